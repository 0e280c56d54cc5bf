/* placeholder: being written */
#include <stdlib.h>
int main(void) { return 77; }
