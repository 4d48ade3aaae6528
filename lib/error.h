/* error.h - the one GError domain of coursed and its codes. */
#ifndef COURSED_ERROR_H
#define COURSED_ERROR_H
#include <glib.h>

#define CD_ERROR cd_error_quark()

enum cd_error_code {
    CD_ERR_FAILED = 1, /* generic failure; the message says why */
    CD_ERR_INVALID,    /* bad input: config, course, CLI argument */
    CD_ERR_NOT_FOUND,  /* no such subscriber, course, enrollment */
    CD_ERR_EXISTS,     /* already there */
    CD_ERR_BUSY,       /* database locked or disk full: try again later */
    CD_ERR_IO,         /* file system */
    CD_ERR_ABANDONED,  /* stopping: in-flight sessions were left to the next start */
    CD_ERR_STATE,      /* a transition the lifecycle table does not allow (a bug, or a lost race) */
};

GQuark cd_error_quark(void);

#endif
