#include "train/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "core/error.hpp"

namespace kiln::train {
namespace {

// Throws the one error every failing step reports, reading errno before anything can change it.
[[noreturn]] void fail_step(const std::filesystem::path& path, std::string_view what,
                            const std::string& step) {
  const int error_number = errno;
  fail("cannot write ", what, " ", path.string(), ": ", std::strerror(error_number), " (", step, ")");
}

// write(2) may write fewer bytes than asked (a signal, a pipe, the last free blocks of a disk): keep
// going until every byte is written or the kernel reports why it cannot.
bool write_all(int fd, std::span<const std::uint8_t> bytes) {
  while (!bytes.empty()) {
    const ssize_t written = ::write(fd, bytes.data(), bytes.size());
    if (written < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (written == 0) {  // no progress and no error: treat as a full disk rather than loop forever
      errno = ENOSPC;
      return false;
    }
    bytes = bytes.subspan(static_cast<std::size_t>(written));
  }
  return true;
}

// Makes the folder's entries (the rename) durable. Some file systems cannot sync a folder and say so
// with EINVAL; there is nothing more to do on those, so that is not an error.
bool sync_folder(const std::filesystem::path& folder) {
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool synced = ::fsync(fd) == 0 || errno == EINVAL;
  const int saved_errno = errno;
  ::close(fd);
  errno = saved_errno;
  return synced;
}

}  // namespace

void write_file_atomically(const std::filesystem::path& path, std::span<const std::uint8_t> bytes,
                           std::string_view what) {
  std::filesystem::path temp = path;
  temp += ".tmp-" + std::to_string(::getpid());
  const std::filesystem::path folder =
      path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");

  // O_TRUNC: a temp file left by a crashed process that had the same pid is simply overwritten.
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail_step(path, what, "creating " + temp.string());  // nothing was created, nothing to remove

  // From here on the temp file exists and every failure must remove it, keeping errno for the message.
  const auto abandon = [&](const std::string& step) {
    const int saved_errno = errno;
    ::unlink(temp.c_str());
    errno = saved_errno;
    fail_step(path, what, step);
  };
  if (!write_all(fd, bytes)) {
    const int saved_errno = errno;
    ::close(fd);
    errno = saved_errno;
    abandon("writing " + temp.string());
  }
  if (::fsync(fd) != 0) {
    const int saved_errno = errno;
    ::close(fd);
    errno = saved_errno;
    abandon("syncing " + temp.string());
  }
  // close can report a deferred write error (NFS does); the bytes are not safe until it succeeds.
  if (::close(fd) != 0) abandon("closing " + temp.string());
  if (::rename(temp.c_str(), path.c_str()) != 0) abandon("renaming " + temp.string() + " over it");
  // The new file is in place; only the durability of its name is left to secure.
  if (!sync_folder(folder)) fail_step(path, what, "syncing the folder " + folder.string());
}

void write_file_atomically(const std::filesystem::path& path, std::string_view text, std::string_view what) {
  write_file_atomically(path, {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()}, what);
}

}  // namespace kiln::train
