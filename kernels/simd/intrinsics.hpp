// kernels/simd/ holds the one vector vocabulary (FloatVector512, FloatVector256) that the vectorized
// kernels of every op family are written in, so one kernel text, a template over the vector trait,
// serves both AVX2 and AVX-512. This header is the one place <immintrin.h> is included from.
//
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_ps() (and its _pd / 256-bit cousins) as an unused
// merge source, which -Wuninitialized flags falsely wherever they are inlined (GCC bug 105593). The
// warning is reported at a line of the intrinsics header, so silencing it around this #include silences
// it there only, and the kernels keep the warning for their own code.
#pragma once

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
