// A fresh folder under the system temp folder for one test, removed with everything in it at the end.
// The name is the test's prefix and a label, plus the process id, so concurrent test runs never share one:
//   ScratchFolder scratch("kiln-trainer-test", "resume");  // /tmp/kiln-trainer-test-resume-4242
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>

namespace kiln::testing {

class ScratchFolder {
 public:
  ScratchFolder(const std::string& prefix, const std::string& name)
      : path_(std::filesystem::temp_directory_path() /
              (prefix + "-" + name + "-" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchFolder() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScratchFolder(const ScratchFolder&) = delete;
  ScratchFolder& operator=(const ScratchFolder&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace kiln::testing
