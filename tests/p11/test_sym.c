/* placeholder: the symmetric group comes with the issue-4 front end. */
#include "config.h"
