/* Image-folder datasets: the input is a list of file names, one per line,
 *   <s><class>/<file>   s: 't' train/ only, 'v' val/ only, anything else both
 *   <s><class>          an empty class folder
 * made into a root/train|val/<class>/<file> tree (every file a 2 x 2 PNG),
 * then opened for both splits and sampled. Names are any bytes but '/', NUL
 * and newline: case, dots, spaces, UTF-8 or not, '%' and '\\'. */
#include "fuzz.h"

static const unsigned char tiny_png[] =
    "\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00\x00\x0d\x49\x48\x44\x52\x00\x00\x00\x02\x00\x00\x00\x02\x08\x02\x00"
    "\x00\x00\xfd\xd4\x9a\x73\x00\x00\x00\x16\x49\x44\x41\x54\x78\x9c\x63\x3c\x21\x17\xc5\xc0\xc0\xc0\xc4\xc0\xc0"
    "\xc0\xc0\xc0\x00\x00\x0f\x98\x01\x44\xe2\x49\xc0\x26\x00\x00\x00\x00\x49\x45\x4e\x44\xae\x42\x60\x82";

#define MAX_LINES 48

/* A name the file system can hold as one entry of this tree. */
static int usable(const char *s, size_t n) {
    return n > 0 && n <= 255 && !memchr(s, '\0', n) && !(n == 1 && s[0] == '.') &&
           !(n == 2 && s[0] == '.' && s[1] == '.');
}

static void add(const char *root, const char *split, const char *cls, size_t cn, const char *file, size_t fn) {
    char path[1200];
    if (snprintf(path, sizeof path, "%s/%s", root, split) >= (int)sizeof path) return;
    mkdir(path, 0700);
    if (snprintf(path, sizeof path, "%s/%s/%.*s", root, split, (int)cn, cls) >= (int)sizeof path) return;
    mkdir(path, 0700);
    if (!file) return;
    if (snprintf(path, sizeof path, "%s/%.*s/%.*s", split, (int)cn, cls, (int)fn, file) >= (int)sizeof path) return;
    vit_fuzz_write(root, path, tiny_png, sizeof tiny_png - 1);
}

VIT_FUZZ_TARGET(folder) {
    const char *root = vit_fuzz_dir();
    const char *s = (const char *)data, *end = s + size;
    for (int line = 0; line < MAX_LINES && s < end; line++) {
        const char *nl = memchr(s, '\n', (size_t)(end - s)), *e = nl ? nl : end;
        const char *l = s;
        s = nl ? nl + 1 : end;
        if (e - l < 2) continue;
        char which = *l++;
        const char *slash = memchr(l, '/', (size_t)(e - l));
        size_t cn = (size_t)((slash ? slash : e) - l);
        const char *file = slash ? slash + 1 : NULL;
        size_t fn = file ? (size_t)(e - file) : 0;
        if (!usable(l, cn) || (file && (!usable(file, fn) || memchr(file, '/', fn)))) continue;
        if (which != 'v') add(root, "train", l, cn, file, fn);
        if (which != 't') add(root, "val", l, cn, file, fn);
    }
    vit_fuzz_dataset(root, VIT_DATA_FOLDER, VIT_SPLIT_TRAIN);
    vit_fuzz_dataset(root, VIT_DATA_AUTO, VIT_SPLIT_VAL);
    return 0;
}
