// Readable C strings in failure messages. doctest 2.4.9 (Debian's) prints a `const char*` given to INFO,
// CAPTURE or a CHECK_MESSAGE as a pointer: `INFO(name)` in a loop over names logs "0x55d2...", and a GPU test
// failing in a lent session's few minutes would not say which case it was. doctest 2.4.10 fixed it; until
// then this specialization prints the string. Every test program includes this header in every source
// (kiln_tests through its precompiled header, the emulation programs with -include), so that each
// translation unit sees the same specialization.
#pragma once

#include <doctest/doctest.h>

#include <ostream>

#if DOCTEST_VERSION < 20410
namespace doctest::detail {
template <>
struct filldata<const char*> {
  static void fill(std::ostream* stream, const char* in) { *stream << (in != nullptr ? in : "{null string}"); }
};
template <>
struct filldata<char*> {
  static void fill(std::ostream* stream, const char* in) { filldata<const char*>::fill(stream, in); }
};
}  // namespace doctest::detail
#endif
