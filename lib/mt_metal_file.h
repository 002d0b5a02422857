#ifndef MT_METAL_FILE_H
#define MT_METAL_FILE_H

#include "mt_metal.h"

/* Loads the metal's settings from path (mt.config.Metal as JSON; NULL = all
 * defaults), with instance (if not NULL) overriding the file's. Returns 0,
 * or -errno with a message naming the file and the field in err. */
int mt_metal_load(const char *path, const char *instance, struct mt_metal *m,
		  char *err, size_t errlen);

#endif
