/*
 * bench/fuse-overhead: a read-only passthrough of one directory through libfuse 2 (high-level API,
 * multi-threaded loop), with no JavaScript: what a FUSE server written in C costs a reader.
 * Built and run by fuse-overhead.sh; not part of hostpull.
 *   passthrough SOURCE-DIR MOUNTPOINT
 */
#define FUSE_USE_VERSION 26
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *source;

static int under_source(char *out, const char *path) {
  return snprintf(out, PATH_MAX, "%s%s", source, path) >= PATH_MAX ? -ENAMETOOLONG : 0;
}

static int pt_getattr(const char *path, struct stat *st) {
  char p[PATH_MAX];
  int e = under_source(p, path);
  return e ? e : lstat(p, st) ? -errno : 0;
}

static int pt_readlink(const char *path, char *buf, size_t size) {
  char p[PATH_MAX];
  int e = under_source(p, path);
  if (e) return e;
  ssize_t n = readlink(p, buf, size - 1);
  if (n < 0) return -errno;
  buf[n] = '\0';
  return 0;
}

static int pt_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t offset, struct fuse_file_info *fi) {
  (void)offset;
  (void)fi;
  char p[PATH_MAX];
  int e = under_source(p, path);
  if (e) return e;
  DIR *d = opendir(p);
  if (!d) return -errno;
  for (struct dirent *entry; (entry = readdir(d));) fill(buf, entry->d_name, NULL, 0);
  closedir(d);
  return 0;
}

static int pt_open(const char *path, struct fuse_file_info *fi) {
  char p[PATH_MAX];
  int e = under_source(p, path);
  if (e) return e;
  if ((fi->flags & O_ACCMODE) != O_RDONLY) return -EROFS;
  int fd = open(p, O_RDONLY);
  if (fd < 0) return -errno;
  fi->fh = fd;
  fi->keep_cache = 1; /* as hostpull's lazy mounts: the content never changes */
  return 0;
}

static int pt_read(const char *path, char *buf, size_t size, off_t offset, struct fuse_file_info *fi) {
  (void)path;
  ssize_t n = pread((int)fi->fh, buf, size, offset);
  return n < 0 ? -errno : (int)n;
}

static int pt_release(const char *path, struct fuse_file_info *fi) {
  (void)path;
  close((int)fi->fh);
  return 0;
}

static int pt_getxattr(const char *path, const char *name, char *value, size_t size) {
  (void)path;
  (void)name;
  (void)value;
  (void)size;
  return -ENODATA;
}

static struct fuse_operations ops = {
  .getattr = pt_getattr,
  .readlink = pt_readlink,
  .readdir = pt_readdir,
  .open = pt_open,
  .read = pt_read,
  .release = pt_release,
  .getxattr = pt_getxattr,
};

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s SOURCE-DIR MOUNTPOINT\n", argv[0]);
    return 2;
  }
  source = argv[1];
  /* The mount options of hostpull's lazy mounts (src/lazy/fuse-mount.ts). */
  char *args[] = {argv[0], argv[2], "-f", "-o", "ro,allow_other,default_permissions,kernel_cache,entry_timeout=3600,attr_timeout=3600,fsname=hostpull-bench", NULL};
  return fuse_main(5, args, &ops, NULL);
}
