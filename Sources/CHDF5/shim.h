// HDF5 exposes its predefined types and flags as macros that expand to
// function calls or global ids (H5T_NATIVE_FLOAT is H5OPEN H5T_NATIVE_FLOAT_g),
// which Swift cannot import. These inline accessors make them callable.
#include <hdf5.h>

static inline hid_t cria_h5t_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t cria_h5t_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t cria_h5t_native_int64(void) { return H5T_NATIVE_INT64; }
static inline hid_t cria_h5t_native_uint8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t cria_h5t_c_s1(void) { return H5T_C_S1; }
static inline hid_t cria_h5p_default(void) { return H5P_DEFAULT; }
static inline hid_t cria_h5p_file_access(void) { return H5P_FILE_ACCESS; }
static inline hid_t cria_h5p_file_create(void) { return H5P_FILE_CREATE; }
static inline hid_t cria_h5p_link_create(void) { return H5P_LINK_CREATE; }
static inline hid_t cria_h5s_all(void) { return H5S_ALL; }
static inline hid_t cria_h5e_default(void) { return H5E_DEFAULT; }
static inline unsigned cria_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline unsigned cria_h5f_acc_trunc(void) { return H5F_ACC_TRUNC; }
static inline unsigned cria_h5f_acc_excl(void) { return H5F_ACC_EXCL; }
static inline size_t cria_h5t_variable(void) { return H5T_VARIABLE; }

// Turns off HDF5's default error-stack printing to stderr; Cria reports
// failures as Swift errors naming the file and object instead.
static inline void cria_h5_silence_errors(void) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

// Whether a dataset's stored type is one Cria converts to float32 safely: the
// standard IEEE floats, or a plain two's-complement integer of 1, 2, 4 or 8 bytes.
// A corrupted type message can describe a float with impossible fields (an
// exponent wider than the type), which HDF5's soft converter does not reject.
static inline int cria_h5t_is_plain_number(hid_t type) {
    H5T_class_t class = H5Tget_class(type);
    if (class == H5T_FLOAT) {
        return H5Tequal(type, H5T_IEEE_F32LE) > 0 || H5Tequal(type, H5T_IEEE_F32BE) > 0
            || H5Tequal(type, H5T_IEEE_F64LE) > 0 || H5Tequal(type, H5T_IEEE_F64BE) > 0;
    }
    if (class == H5T_INTEGER) {
        size_t size = H5Tget_size(type);
        if (size != 1 && size != 2 && size != 4 && size != 8) return 0;
        return H5Tget_precision(type) == size * 8 && H5Tget_offset(type) == 0;
    }
    return 0;
}
