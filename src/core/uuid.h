/*
 * uuid — random (version 4) UUIDs, for the ids herald gives events and
 * connections.
 * Layer: core. Any thread. Reads the kernel's randomness (getrandom(2)); a
 * failure to get any aborts, since ids that collide would make dedup drop
 * real events.
 */
#ifndef HD_UUID_H
#define HD_UUID_H

/* Writes 36 chars + NUL of a random (version 4) UUID into out. */
void hd_uuid_v4(char out[37]);

#endif
