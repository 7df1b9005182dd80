#include <zlib.h>
#include <stdlib.h>
#include <string.h>

/// Inflates a whole gzip (or zlib) stream held in memory into a malloc'd buffer.
/// Returns 0 and sets *out/*out_size on success (the caller frees *out); otherwise a
/// zlib status, with a message in `error`. `max_size` bounds the output so that a
/// hostile file cannot exhaust memory.
static inline int cria_gunzip(const unsigned char *data, size_t size, size_t max_size,
                              unsigned char **out, size_t *out_size, char *error, size_t error_size) {
    z_stream stream;
    memset(&stream, 0, sizeof(stream));
    *out = NULL;
    *out_size = 0;
    // 15 window bits + 32: detect gzip or zlib headers automatically.
    int status = inflateInit2(&stream, 15 + 32);
    if (status != Z_OK) { strncpy(error, "cannot initialise zlib", error_size); return status; }
    size_t capacity = size * 4 + 1024, length = 0;
    unsigned char *buffer = (unsigned char *)malloc(capacity);
    if (!buffer) { inflateEnd(&stream); strncpy(error, "out of memory", error_size); return Z_MEM_ERROR; }
    stream.next_in = (Bytef *)data;
    stream.avail_in = (uInt)size;
    do {
        if (length == capacity) {
            if (capacity >= max_size) {
                free(buffer); inflateEnd(&stream);
                strncpy(error, "decompressed data exceeds the size limit", error_size);
                return Z_BUF_ERROR;
            }
            capacity = capacity * 2 > max_size ? max_size : capacity * 2;
            unsigned char *grown = (unsigned char *)realloc(buffer, capacity);
            if (!grown) { free(buffer); inflateEnd(&stream); strncpy(error, "out of memory", error_size); return Z_MEM_ERROR; }
            buffer = grown;
        }
        stream.next_out = buffer + length;
        stream.avail_out = (uInt)(capacity - length);
        status = inflate(&stream, Z_NO_FLUSH);
        length = capacity - stream.avail_out;
        if (status == Z_BUF_ERROR && stream.avail_in == 0) break;
    } while (status == Z_OK || (status == Z_BUF_ERROR && stream.avail_out == 0));
    inflateEnd(&stream);
    if (status != Z_STREAM_END) {
        free(buffer);
        strncpy(error, status == Z_DATA_ERROR ? "corrupt compressed data" : "truncated compressed data", error_size);
        error[error_size - 1] = 0;
        return status == Z_OK ? Z_BUF_ERROR : status;
    }
    *out = buffer;
    *out_size = length;
    return 0;
}
