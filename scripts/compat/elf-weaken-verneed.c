/* Marks one version requirement (e.g. GLIBCXX_3.4.32) of an ELF64 little-endian shared library as weak
 * (VER_FLG_WEAK in .gnu.version_r), so the dynamic loader no longer refuses to load the library when the
 * system libstdc++ lacks that version. Used by torchsharp-glibcxx.sh; see docs/debian.md.
 * usage: elf-weaken-verneed FILE VERSION   (exit 0: flagged or already weak; 1: error; 2: not found) */
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: %s FILE VERSION\n", argv[0]); return 1; }
  FILE *f = fopen(argv[1], "r+b");
  if (!f) { perror(argv[1]); return 1; }
  fseek(f, 0, SEEK_END); long size = ftell(f); fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc(size);
  if (!b || fread(b, 1, size, f) != (size_t)size) { fprintf(stderr, "%s: read failed\n", argv[1]); return 1; }
  Elf64_Ehdr *eh = (Elf64_Ehdr *)b;
  if (size < (long)sizeof *eh || memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_ident[EI_CLASS] != ELFCLASS64) {
    fprintf(stderr, "%s: not an ELF64 file\n", argv[1]); return 1;
  }
  Elf64_Shdr *sh = (Elf64_Shdr *)(b + eh->e_shoff);
  int found = 0;
  for (int i = 0; i < eh->e_shnum; i++) {
    if (sh[i].sh_type != SHT_GNU_verneed) continue;
    const char *strtab = (const char *)(b + sh[sh[i].sh_link].sh_offset);
    unsigned char *p = b + sh[i].sh_offset;
    for (;;) {
      Elf64_Verneed *vn = (Elf64_Verneed *)p;
      unsigned char *q = p + vn->vn_aux;
      for (int k = 0; k < vn->vn_cnt; k++) {
        Elf64_Vernaux *va = (Elf64_Vernaux *)q;
        if (strcmp(strtab + va->vna_name, argv[2]) == 0) {
          va->vna_flags |= VER_FLG_WEAK;
          found = 1;
          printf("%s: %s (from %s) marked weak\n", argv[1], argv[2], strtab + vn->vn_file);
        }
        if (!va->vna_next) break;
        q += va->vna_next;
      }
      if (!vn->vn_next) break;
      p += vn->vn_next;
    }
  }
  if (!found) { fprintf(stderr, "%s: no version requirement %s\n", argv[1], argv[2]); return 2; }
  fseek(f, 0, SEEK_SET);
  if (fwrite(b, 1, size, f) != (size_t)size) { fprintf(stderr, "%s: write failed\n", argv[1]); return 1; }
  fclose(f);
  return 0;
}
