# cmake -DIN=file -DOUT=file.c -DSYMBOL=name -P embed.cmake
# Writes OUT defining `const char SYMBOL[]` (IN's bytes, NUL-terminated) and
# `const unsigned long SYMBOL_len` (without the NUL).
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" hex_len)
math(EXPR len "${hex_len} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT}.tmp
     "/* Generated from ${IN} by embed.cmake; do not edit. */\n"
     "extern const char ${SYMBOL}[];\n"
     "extern const unsigned long ${SYMBOL}_len;\n"
     "const char ${SYMBOL}[] = {\n${bytes}0x00};\n"
     "const unsigned long ${SYMBOL}_len = ${len};\n")
file(RENAME ${OUT}.tmp ${OUT})
