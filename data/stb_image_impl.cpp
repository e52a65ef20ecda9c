// The one translation unit that compiles stb_image's and stb_image_write's implementations (single-header
// libraries: every other file includes <stb/stb_image.h> or <stb/stb_image_write.h> for the declarations
// only). kiln decodes what it reads with the first and encodes the PNGs it writes (plots, heat maps, packs
// of resized images, the tests' images) with the second.
//
// Only the formats kiln reads are built. STBI_FAILURE_USERMSG picks stb's longer failure messages
// ("Image not of any known type, or corrupt" rather than "unknown image type"); the failure reason is
// thread-local, so the loader's threads may decode at the same time.
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_TGA
#define STBI_FAILURE_USERMSG
#define STB_IMAGE_WRITE_IMPLEMENTATION

// stb is third-party C-style code; its warnings are not ours to fix.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop
