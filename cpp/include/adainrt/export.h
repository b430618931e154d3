/* Symbol visibility of libadainrt_cpp: the library is built with hidden symbols by default, so
 * only what is marked ADAINRT_API (the C++ classes and the C ABI) is exported. */
#ifndef ADAINRT_EXPORT_H
#define ADAINRT_EXPORT_H

#if defined(_WIN32)
#  if defined(ADAINRT_BUILDING)
#    define ADAINRT_API __declspec(dllexport)
#  else
#    define ADAINRT_API __declspec(dllimport)
#  endif
#else
#  define ADAINRT_API __attribute__((visibility("default")))
#endif

#endif /* ADAINRT_EXPORT_H */
