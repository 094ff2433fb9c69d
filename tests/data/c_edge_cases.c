#include <stdlib.h>
#include <malloc.h>
int main(void){ void*p; posix_memalign(&p,64,100); free(p); p=memalign(32,50); free(p); p=aligned_alloc(64,128); free(p); p=valloc(10); free(p);
 p=malloc(10); p=realloc(p,0); free(p); p=calloc(3,5); p=realloc(p,100); free(p); free((void*)0x1234000); return 0;}
