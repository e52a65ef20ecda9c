// The test runner's entry point: doctest's own main. DOCTEST_CONFIG_IMPLEMENT too, because every test source
// has seen doctest's interface already (tests/support/doctest_strings.hpp, included ahead of each), and only
// this macro, not the _WITH_MAIN one, takes effect on a second inclusion.
#define DOCTEST_CONFIG_IMPLEMENT
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
