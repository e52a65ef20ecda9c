// Writing a file so that a crash, a full disk or a kill at any moment leaves either the old file or the
// complete new one, never a torn mixture. The trainer rewrites RUNDIR/last.kiln after every epoch;
// without this, a run interrupted mid-write would lose not one epoch but all of them.
//
// The recipe (POSIX):
//   1. write the bytes to "<path>.tmp-<pid>" in the same folder (rename is atomic only within one
//      file system, and the pid keeps two processes from sharing a temp file);
//   2. fsync the temp file, so its bytes are on disk before its name can point at them;
//   3. rename it over <path>: readers see the old file or the new one, nothing in between;
//   4. fsync the folder, so the rename itself survives a power cut.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>

namespace kiln::train {

// Replaces `path` with `bytes` atomically. On any failure (creating the temp file, a short write such as
// a full disk, fsync, rename) the temp file is removed, an existing file at `path` is left as it was,
// and kiln::Error says what and why:
//   "cannot write checkpoint runs/a/last.kiln: No space left on device (writing runs/a/last.kiln.tmp-4242)"
// `what` names the kind of file in that message ("checkpoint", "file").
void write_file_atomically(const std::filesystem::path& path, std::span<const std::uint8_t> bytes,
                           std::string_view what = "file");

// The same for text (a JSON file): its bytes as they are.
void write_file_atomically(const std::filesystem::path& path, std::string_view text, std::string_view what);

}  // namespace kiln::train
