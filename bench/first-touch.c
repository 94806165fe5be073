/* Benchmark helper (not in CI): cost of touching free memory for the first time in this VM.
 * virtio-balloon free page reporting hands free guest pages back to the host, so the next first
 * touch of such a page faults in the host too. Prints microseconds per 4 KiB page: fresh memory,
 * the same amount again at once (pages just freed, not yet reported), and again after a pause.
 * Build and run: cc -O2 -o /tmp/first-touch bench/first-touch.c && /tmp/first-touch 3000 8
 * (MB to touch, seconds of pause). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static void run(size_t sz,const char*what){
  char*p=mmap(0,sz,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0);
  madvise(p,sz,MADV_NOHUGEPAGE);
  double t=now(); for(size_t i=0;i<sz;i+=4096)p[i]=1; double d=now()-t;
  printf("%-28s %.2f us/page (%zu MB)\n",what,d*1e6/(sz/4096),sz>>20); fflush(stdout);
  munmap(p,sz);
}
int main(int c,char**v){size_t sz=(size_t)atol(v[1])<<20;
  run(sz,"first"); run(sz,"again at once"); sleep(atoi(v[2])); run(sz,"after sleep"); return 0;}
