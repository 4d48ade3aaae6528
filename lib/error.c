/* error.c - owns the GError domain shared by every module of libcoursed. */
#include "error.h"

G_DEFINE_QUARK(coursed - error - quark, cd_error)
