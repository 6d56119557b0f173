/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Runs a fuzz target over files (seed corpus, committed crashes) without
 * libFuzzer, so every build replays them as a regression test (TAP). */

#include <glib.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
main (int argc, char **argv)
{
  guint n = 0;

  g_print ("TAP version 13\n");
  for (int i = 1; i < argc; i++) {
    g_autoptr (GDir) dir = g_dir_open (argv[i], 0, NULL);
    const char *name;

    if (dir == NULL) {
      g_print ("Bail out! cannot open %s\n", argv[i]);
      return 1;
    }
    while ((name = g_dir_read_name (dir)) != NULL) {
      g_autofree char *path = g_build_filename (argv[i], name, NULL);
      g_autofree char *data = NULL;
      gsize size;

      if (!g_file_get_contents (path, &data, &size, NULL))
        continue;
      LLVMFuzzerTestOneInput ((const uint8_t *) data, size);
      g_print ("ok %u %s\n", ++n, name);
    }
  }
  g_print ("1..%u\n", n);
  return n > 0 ? 0 : 1;
}
