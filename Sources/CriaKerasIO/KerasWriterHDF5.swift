import CHDF5
import CriaCore
import Foundation

/// Writing helpers the Keras writer needs beyond `HDF5.swift`, kept separate so
/// that file's reading paths stay untouched: ASCII-tagged strings (Keras's
/// `layer_names`/`weight_names`/`model_config` are h5py byte strings, which
/// HDF5 records as ASCII) and the empty float64 array h5py writes for an
/// empty `weight_names` list.
extension HDF5Group {
    public enum StringCharset: Sendable { case ascii, utf8 }

    /// A scalar variable-length string with an explicit charset tag.
    public func setStringAttribute(_ name: String, _ value: String, charset: StringCharset) throws {
        try writeVariableStrings(name, [value], scalar: true, charset: charset)
    }

    /// A 1-D array of variable-length strings with an explicit charset tag.
    public func setStringArrayAttribute(_ name: String, _ values: [String], charset: StringCharset) throws {
        try writeVariableStrings(name, values, scalar: false, charset: charset)
    }

    /// What h5py stores for `attrs[name] = []` (numpy turns an empty list into
    /// a float64 array of shape (0,)); Keras writes it for weightless layers.
    public func setEmptyFloat64ArrayAttribute(_ name: String) throws {
        if hasAttribute(name) { H5Adelete(id, name) }
        var dims: [hsize_t] = [0]
        let space = H5Screate_simple(1, &dims, nil)
        defer { H5Sclose(space) }
        let attribute = H5Acreate2(id, name, cria_h5t_native_double(), space, cria_h5p_default(), cria_h5p_default())
        guard attribute >= 0 else {
            throw CriaError("\(file.name): cannot create attribute \(path)@\(name): \(HDF5File.lastError())")
        }
        H5Aclose(attribute)
    }

    private func writeVariableStrings(_ name: String, _ values: [String], scalar: Bool, charset: StringCharset) throws {
        if hasAttribute(name) { H5Adelete(id, name) }
        let type = H5Tcopy(cria_h5t_c_s1())
        defer { H5Tclose(type) }
        H5Tset_size(type, cria_h5t_variable())
        H5Tset_cset(type, charset == .ascii ? H5T_CSET_ASCII : H5T_CSET_UTF8)
        var dims: [hsize_t] = [hsize_t(values.count)]
        let space = scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dims, nil)
        defer { H5Sclose(space) }
        let attribute = H5Acreate2(id, name, type, space, cria_h5p_default(), cria_h5p_default())
        guard attribute >= 0 else {
            throw CriaError("\(file.name): cannot create attribute \(path)@\(name): \(HDF5File.lastError())")
        }
        defer { H5Aclose(attribute) }
        let cStrings = values.map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        var pointers: [UnsafePointer<CChar>?] = cStrings.map { UnsafePointer($0) }
        guard H5Awrite(attribute, type, &pointers) >= 0 else {
            throw CriaError("\(file.name): cannot write attribute \(path)@\(name): \(HDF5File.lastError())")
        }
    }
}
