/*
 * What one procfs file costs to read, per process, over every process in
 * /proc: opened, read and closed (through a path-only descriptor of the
 * process directory, as procgroups opens them), and re-read with pread
 * from a descriptor kept open; and the fstat of fd/. Best of ROUNDS
 * passes, process CPU time per process in microseconds.
 *
 *   cc -O2 -o filecost benches/filecost.c && ./filecost [ROUNDS]
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_PROCESS_CPUTIME_ID,&t);return t.tv_sec*1e6+t.tv_nsec/1e3;}
int main(int argc,char**argv){
  int dirs[20000]; int n=0; DIR*d=opendir("/proc"); struct dirent*e;
  while((e=readdir(d))){ if(e->d_name[0]<'0'||e->d_name[0]>'9')continue; int fd=openat(dirfd(d),e->d_name,O_PATH|O_DIRECTORY|O_CLOEXEC); if(fd>=0) dirs[n++]=fd; }
  const char*files[]={"schedstat","stat","status","statm","io","wchan","cmdline",0};
  char buf[8192]; int rounds=argc>1?atoi(argv[1]):5;
  static int kept[20000];
  for(int f=0;files[f];f++){
    double best_o=1e18,best_p=1e18;
    for(int i=0;i<n;i++) kept[i]=openat(dirs[i],files[f],O_RDONLY|O_CLOEXEC);
    for(int i=0;i<n;i++) if(kept[i]>=0) pread(kept[i],buf,sizeof buf,0);
    for(int r=0;r<rounds;r++){
      double t0=now();
      for(int i=0;i<n;i++){int fd=openat(dirs[i],files[f],O_RDONLY|O_CLOEXEC); if(fd<0)continue; read(fd,buf,sizeof buf); close(fd);}
      double t1=now(); if(t1-t0<best_o)best_o=t1-t0;
      t0=now();
      for(int i=0;i<n;i++) if(kept[i]>=0) pread(kept[i],buf,sizeof buf,0);
      t1=now(); if(t1-t0<best_p)best_p=t1-t0;
    }
    for(int i=0;i<n;i++) if(kept[i]>=0) close(kept[i]);
    printf("%-10s open+read+close %6.2f us  pread %6.2f us  (n=%d)\n",files[f],best_o/n,best_p/n,n);
  }
  double best=1e18; for(int r=0;r<rounds;r++){double t0=now(); struct stat st; for(int i=0;i<n;i++){fstatat(dirs[i],"fd",&st,0);} double t1=now(); if(t1-t0<best)best=t1-t0;}
  printf("fstatat fd %6.2f us\n",best/n);
}
