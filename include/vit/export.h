/* VIT_API marks the symbols libvit exports; everything else is hidden. */
#ifndef VIT_EXPORT_H
#define VIT_EXPORT_H

#if defined(VIT_BUILDING_LIBRARY) && defined(__GNUC__)
#define VIT_API __attribute__((visibility("default")))
#else
#define VIT_API
#endif

#ifdef __cplusplus
#define VIT_EXTERN_C_BEGIN extern "C" {
#define VIT_EXTERN_C_END }
#else
#define VIT_EXTERN_C_BEGIN
#define VIT_EXTERN_C_END
#endif

#endif
