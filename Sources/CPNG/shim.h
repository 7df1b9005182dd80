#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

// libpng reports errors by longjmp. The jump target must be a C frame, never
// a Swift one, so the whole decode lives here and Swift only sees a status.
// The transforms mirror TensorFlow's png::CommonInitDecode for channels=3,
// uint8: palette and low-bit gray expanded, gray replicated to RGB, alpha
// stripped (not composited), 16-bit reduced by png_set_strip_16 (the high
// byte), and no gamma correction.

typedef struct {
    const unsigned char *data;
    size_t size;
    size_t offset;
    char message[200];
} cria_png_reader;

static void cria_png_read_fn(png_structp png, png_bytep out, png_size_t count) {
    cria_png_reader *reader = (cria_png_reader *)png_get_io_ptr(png);
    if (reader->offset + count > reader->size) {
        png_error(png, "unexpected end of file (truncated PNG)");
    }
    memcpy(out, reader->data + reader->offset, count);
    reader->offset += count;
}

static void cria_png_error_fn(png_structp png, png_const_charp message) {
    cria_png_reader *reader = (cria_png_reader *)png_get_error_ptr(png);
    strncpy(reader->message, message, sizeof(reader->message) - 1);
    reader->message[sizeof(reader->message) - 1] = 0;
    png_longjmp(png, 1);
}

static void cria_png_warning_fn(png_structp png, png_const_charp message) {
    (void)png; (void)message;
}

/// Reads the header only. Returns 0 on success; otherwise the message is in `error`.
static inline int cria_png_header(const unsigned char *data, size_t size,
                                  unsigned int *width, unsigned int *height,
                                  char *error, size_t error_size) {
    cria_png_reader reader = { data, size, 0, {0} };
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &reader, cria_png_error_fn, cria_png_warning_fn);
    if (!png) { strncpy(error, "out of memory", error_size); return 1; }
    png_infop info = png_create_info_struct(png);
    if (!info || setjmp(png_jmpbuf(png))) {
        strncpy(error, reader.message[0] ? reader.message : "out of memory", error_size);
        error[error_size - 1] = 0;
        png_destroy_read_struct(&png, info ? &info : NULL, NULL);
        return 1;
    }
    png_set_read_fn(png, &reader, cria_png_read_fn);
    png_read_info(png, info);
    *width = png_get_image_width(png, info);
    *height = png_get_image_height(png, info);
    png_destroy_read_struct(&png, &info, NULL);
    return 0;
}

/// Decodes to packed RGB8 in `out` (width*height*3 bytes, sized from cria_png_header).
/// Returns 0 on success; otherwise the message is in `error`.
static inline int cria_png_decode_rgb8(const unsigned char *data, size_t size,
                                       unsigned char *out, size_t out_size,
                                       char *error, size_t error_size) {
    cria_png_reader reader = { data, size, 0, {0} };
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &reader, cria_png_error_fn, cria_png_warning_fn);
    if (!png) { strncpy(error, "out of memory", error_size); return 1; }
    png_infop info = png_create_info_struct(png);
    png_bytep *volatile rows = NULL;
    if (!info || setjmp(png_jmpbuf(png))) {
        strncpy(error, reader.message[0] ? reader.message : "out of memory", error_size);
        error[error_size - 1] = 0;
        free(rows);
        png_destroy_read_struct(&png, info ? &info : NULL, NULL);
        return 1;
    }
    png_set_read_fn(png, &reader, cria_png_read_fn);
    png_read_info(png, info);
    png_uint_32 width = png_get_image_width(png, info);
    png_uint_32 height = png_get_image_height(png, info);
    int bit_depth = png_get_bit_depth(png, info);
    int color_type = png_get_color_type(png, info);
    if ((size_t)width * height * 3 != out_size) {
        strncpy(reader.message, "output buffer does not match the image size", sizeof(reader.message) - 1);
        png_longjmp(png, 1);
    }
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    int is_gray = !(color_type & PNG_COLOR_MASK_COLOR);
    if (is_gray && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (is_gray) png_set_gray_to_rgb(png);
    png_set_strip_alpha(png);
    if (bit_depth > 8) png_set_strip_16(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)width * 3) {
        strncpy(reader.message, "unexpected row layout after RGB conversion", sizeof(reader.message) - 1);
        png_longjmp(png, 1);
    }
    rows = (png_bytep *)malloc(sizeof(png_bytep) * (height ? height : 1));
    if (!rows) {
        strncpy(reader.message, "out of memory", sizeof(reader.message) - 1);
        png_longjmp(png, 1);
    }
    for (png_uint_32 y = 0; y < height; y++) rows[y] = out + (size_t)y * width * 3;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    return 0;
}

// Encodes 8-bit RGB rows into a malloc'd PNG in memory (the caller frees *out and
// writes it atomically). Returns 0 on success, or -1 with a message in `error`.
typedef struct {
    unsigned char *data;
    size_t size;
    size_t capacity;
    int failed;
    char message[200];
} cria_png_writer;

static void cria_png_write_fn(png_structp png, png_bytep data, png_size_t count) {
    cria_png_writer *writer = (cria_png_writer *)png_get_io_ptr(png);
    if (writer->size + count > writer->capacity) {
        size_t capacity = writer->capacity * 2 + count + 4096;
        unsigned char *grown = (unsigned char *)realloc(writer->data, capacity);
        if (!grown) { writer->failed = 1; png_error(png, "out of memory"); }
        writer->data = grown;
        writer->capacity = capacity;
    }
    memcpy(writer->data + writer->size, data, count);
    writer->size += count;
}

static void cria_png_flush_fn(png_structp png) { (void)png; }

static void cria_png_write_error_fn(png_structp png, png_const_charp message) {
    cria_png_writer *writer = (cria_png_writer *)png_get_error_ptr(png);
    strncpy(writer->message, message, sizeof(writer->message) - 1);
    writer->message[sizeof(writer->message) - 1] = 0;
    png_longjmp(png, 1);
}

static inline int cria_png_encode_rgb(const unsigned char *rgb, unsigned width, unsigned height,
                                      unsigned char **out, size_t *out_size, char *error, size_t error_size) {
    cria_png_writer writer;
    memset(&writer, 0, sizeof(writer));
    *out = NULL;
    *out_size = 0;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &writer, cria_png_write_error_fn, NULL);
    if (!png) { strncpy(error, "cannot create a PNG writer", error_size); return -1; }
    png_infop info = png_create_info_struct(png);
    if (!info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, info ? &info : NULL);
        free(writer.data);
        strncpy(error, writer.message[0] ? writer.message : "cannot encode PNG", error_size);
        error[error_size - 1] = 0;
        return -1;
    }
    png_set_write_fn(png, &writer, cria_png_write_fn, cria_png_flush_fn);
    png_set_IHDR(png, info, width, height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (unsigned row = 0; row < height; row++) {
        png_write_row(png, (png_const_bytep)(rgb + (size_t)row * width * 3));
    }
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    *out = writer.data;
    *out_size = writer.size;
    return 0;
}
