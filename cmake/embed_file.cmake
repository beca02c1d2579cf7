# cmake -DIN=FILE -DOUT=HEADER -DNAME=SYMBOL -P embed_file.cmake
# Writes HEADER with the bytes of FILE as `inline constexpr unsigned char SYMBOL[]` and SYMBOL_size: how the
# chat page of `gill serve` (tools/gill/serve_page.html) is built into the binary (no file is read at run time).
# The header is rewritten only when its content changes, and names FILE without its folder (ccache-friendly).
file(READ "${IN}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
get_filename_component(name "${IN}" NAME)
file(WRITE "${OUT}.tmp"
  "// Generated from ${name} by cmake/embed_file.cmake at build time; do not edit.\n"
  "#pragma once\n#include <cstddef>\n"
  "inline constexpr unsigned char ${NAME}[] = {\n${bytes}\n};\n"
  "inline constexpr std::size_t ${NAME}_size = sizeof(${NAME});\n")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${OUT}.tmp" "${OUT}")
file(REMOVE "${OUT}.tmp")
