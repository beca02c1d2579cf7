// Whether this translation unit is compiled with AddressSanitizer, for gcc and clang alike: gcc defines
// __SANITIZE_ADDRESS__, clang (14) only answers __has_feature(address_sanitizer). GILL_ASAN is 1 or 0.
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define GILL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GILL_ASAN 1
#endif
#endif
#ifndef GILL_ASAN
#define GILL_ASAN 0
#endif
