/* <vit/vit.h> must compile on its own as strict C99 and link. */
#include <vit/vit.h>

int main(void) {
    return vit_version_number() == VIT_VERSION_NUMBER ? 0 : 1;
}
