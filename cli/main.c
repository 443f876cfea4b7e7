/* main.c — cairn's command line (being written). */
#include <stdio.h>
int main(void) { fprintf(stderr, "cairn: error: not built yet\n"); return 1; }
