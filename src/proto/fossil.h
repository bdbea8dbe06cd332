/*
 * fossil — encoding a fossil delta: the delta format of the Fossil SCM,
 * which Centrifugo's client protocol uses for delta compression of
 * publications (`delta: "fossil"` in a subscribe). Written from the format
 * description, https://fossil-scm.org/home/doc/tip/www/delta_format.wiki:
 *
 *   delta   = INT(target length) "\n" *command INT(checksum) ";"
 *   command = INT(n) "@" INT(offset) ","   copy n bytes of the source at offset
 *           / INT(n) ":" n bytes             insert n literal bytes
 *   INT     = base-64 digits, most significant first, from the alphabet
 *             0-9 A-Z _ a-z ~ (values 0 to 63); zero is "0"
 *   checksum = the sum modulo 2^32 of the target read as big-endian 32-bit
 *             words, the last partial word padded with zero bytes.
 *
 * Layer: proto. Pure (any thread); called by the WebSocket edge once per
 * publication per topic for subscribers that negotiated delta compression.
 *
 * The encoder: texts shorter than 16 bytes copy their common prefix and
 * suffix around one insert; longer ones index the source by the hash of
 * each aligned 16-byte block, roll a hash over the target, extend each
 * candidate match both ways and copy the longest, inserting what no match
 * covers (fossil's own approach, with a bounded chain per position, so the
 * cost is linear in the sizes). Publications of one channel are usually
 * the same document with a few fields changed anywhere, which this finds.
 * The copy boundaries never split a UTF-8 sequence of the target, so the
 * inserted bytes are valid UTF-8 whenever the target is (the JSON protocol
 * carries the delta as a JSON string).
 */
#ifndef HD_PROTO_FOSSIL_H
#define HD_PROTO_FOSSIL_H

#include "core/buf.h"

#include <stddef.h>
#include <stdint.h>

/*
 * Appends to out the delta that turns src[0, sn) into tgt[0, tn). Returns
 * 0, or out's HD_ETOOBIG with out left as it was.
 */
int hd_fossil_delta(const char *src, size_t sn, const char *tgt, size_t tn, struct hd_buf *out);

/* The format's checksum of p[0, n). */
uint32_t hd_fossil_checksum(const char *p, size_t n);

#endif
