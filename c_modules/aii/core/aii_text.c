// SPDX-License-Identifier: MIT
#include "aii_text.h"

#define AII_TEXT_STRING(name, text) text,
static const char *const texts[AII_T_COUNT] = {
    AII_TEXTS(AII_TEXT_STRING)
};
#undef AII_TEXT_STRING

const char *aii_text(aii_text_t t) {
    return (unsigned)t < AII_T_COUNT ? texts[t] : "";
}

aii_text_t aii_status_text(aii_status_t st) {
    #define AII_STATUS_CASE(status, text) case status: \
        return AII_T_##text;
    switch (st) {
        AII_STATUS_TEXTS(AII_STATUS_CASE)
        default:
            return AII_T_ERROR_N;
    }
    #undef AII_STATUS_CASE
}

size_t aii_text_format(char *buf, size_t cap, aii_text_t t, const char *const *args, int n) {
    const char *s = aii_text(t);
    size_t len = 0;
    int k = 0;
    if (cap == 0) {
        return 0;
    }
    while (*s && len + 1 < cap) {
        if (s[0] == '{' && s[1] == '}' && k < n) {
            for (const char *a = args[k++]; *a && len + 1 < cap; a++) {
                buf[len++] = *a;
            }
            s += 2;
        } else {
            buf[len++] = *s++;
        }
    }
    buf[len] = 0;
    return len;
}
