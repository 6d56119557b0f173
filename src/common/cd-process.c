/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "cd-process.h"

#include <openssl/crypto.h>

/*
 * cd_process_init:
 *
 * Call first in main(). OpenSSL (inside GStreamer's DTLS element and
 * libpq) by default registers an atexit() handler that frees every
 * thread's OpenSSL state. GStreamer keeps idle streaming threads in a
 * pool that nobody joins, so such a thread can end while exit() runs and
 * free its own state a second time: a double free that kills the program
 * at exit, now and then. Asking OpenSSL not to clean up at exit removes
 * the race; the operating system frees the memory anyway. The option only
 * counts on OpenSSL's first initialization, hence "first in main()".
 */
void
cd_process_init (void)
{
  if (!OPENSSL_init_crypto (OPENSSL_INIT_NO_ATEXIT, NULL))
    g_warning ("OpenSSL failed to initialize; TLS and DTLS will not work");
}
