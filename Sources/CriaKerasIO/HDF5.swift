import CHDF5
import CriaCore
import Foundation

/// A thin, safe layer over libhdf5's C API: just what Keras files need.
///
/// Every failure becomes a `CriaError` that names the file and the object,
/// with HDF5's own innermost message appended. HDF5's default habit of
/// printing its error stack to stderr is switched off once per process.
public final class HDF5File {
    public let name: String
    let id: hid_t

    private static let silenced: Void = { cria_h5_silence_errors() }()

    /// Opens an existing file read-only, after checking it exists and is HDF5 at all.
    public init(reading url: URL) throws {
        _ = HDF5File.silenced
        name = url.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw CriaError("\(url.path): no such file")
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
        guard size > 0 else { throw CriaError("\(url.path): empty file (0 bytes), not an HDF5 file") }
        guard H5Fis_hdf5(url.path) > 0 else {
            throw CriaError("\(url.path): not an HDF5 file (no HDF5 signature; is it truncated, or another format?)")
        }
        let handle = H5Fopen(url.path, cria_h5f_acc_rdonly(), cria_h5p_default())
        guard handle >= 0 else {
            throw CriaError("\(url.path): cannot open HDF5 file: \(HDF5File.lastError())")
        }
        id = handle
    }

    /// Opens an in-memory HDF5 image (the `model.weights.h5` inside a `.keras` ZIP).
    public init(image: Data, name: String) throws {
        _ = HDF5File.silenced
        self.name = name
        let access = H5Pcreate(cria_h5p_file_access())
        defer { H5Pclose(access) }
        // The core driver keeps the file in memory; backing_store=0 means nothing is written to disk.
        H5Pset_fapl_core(access, 1 << 20, false)
        let status = image.withUnsafeBytes { raw in
            H5Pset_file_image(access, UnsafeMutableRawPointer(mutating: raw.baseAddress), raw.count)
        }
        guard status >= 0 else { throw CriaError("\(name): cannot load HDF5 image: \(HDF5File.lastError())") }
        let handle = H5Fopen(name, cria_h5f_acc_rdonly(), access)
        guard handle >= 0 else {
            throw CriaError("\(name): not a readable HDF5 image: \(HDF5File.lastError())")
        }
        id = handle
    }

    /// Creates a file for writing. It is built in memory (HDF5's core driver, no backing
    /// store) and written to disk by `flush()` with one ordinary write: libhdf5 faults in
    /// H5Dclose after a failed write(2) (a full disk, EFBIG), so it never writes to disk itself.
    public init(creating url: URL) throws {
        _ = HDF5File.silenced
        name = url.path
        let access = H5Pcreate(cria_h5p_file_access())
        defer { H5Pclose(access) }
        H5Pset_fapl_core(access, 1 << 20, false)
        let handle = H5Fcreate(url.path, cria_h5f_acc_trunc(), cria_h5p_default(), access)
        guard handle >= 0 else {
            throw CriaError("\(url.path): cannot create HDF5 file: \(HDF5File.lastError())")
        }
        id = handle
    }

    deinit { H5Fclose(id) }

    public var root: HDF5Group { HDF5Group(file: self, id: H5Gopen2(id, "/", cria_h5p_default()), path: "/") }

    /// Flushes and closes explicitly, so that a writer can report failures before renaming into place.
    public func flush() throws {
        guard H5Fflush(id, H5F_SCOPE_GLOBAL) >= 0 else {
            throw CriaError("\(name): cannot flush HDF5 file: \(HDF5File.lastError())")
        }
        let size = H5Fget_file_image(id, nil, 0)
        guard size > 0 else { throw CriaError("\(name): cannot get the HDF5 file image: \(HDF5File.lastError())") }
        var image = Data(count: size)
        let copied = image.withUnsafeMutableBytes { H5Fget_file_image(id, $0.baseAddress, size) }
        guard copied == size else { throw CriaError("\(name): cannot get the HDF5 file image: \(HDF5File.lastError())") }
        do { try image.write(to: URL(fileURLWithPath: name)) } catch {
            throw CriaError("\(name): cannot write: \(error.localizedDescription)")
        }
    }

    /// The most specific message on HDF5's current error stack, for appending to Cria's own.
    static func lastError() -> String {
        final class Messages { var items: [String] = [] }
        let messages = Messages()
        let context = Unmanaged.passUnretained(messages).toOpaque()
        H5Ewalk2(cria_h5e_default(), H5E_WALK_DOWNWARD, { _, error, context in
            guard let error, let context, let description = error.pointee.desc else { return 0 }
            let messages = Unmanaged<Messages>.fromOpaque(context).takeUnretainedValue()
            messages.items.append(String(cString: description))
            return 0
        }, context)
        H5Eclear2(cria_h5e_default())
        // Walking downward, the last entry is the innermost cause (e.g. "truncated file: eof = ...").
        return messages.items.last ?? "unknown HDF5 error"
    }
}

/// Bounds on what a Keras file can plausibly hold. HDF5 validates checksums only on
/// some metadata, so a corrupted count or dimension can reach Cria as a huge number;
/// these limits turn it into an error before a buffer is sized from it.
enum HDF5Limits {
    /// Links in one group (MobileNetV2 has 155 layers; the largest Keras models a few thousand).
    static let links: UInt64 = 100_000
    /// Attributes on one object, and strings in one attribute.
    static let attributes: UInt64 = 10_000
    static let strings = 100_000
    /// Bytes in one fixed-length string attribute (a model_config is tens of kilobytes).
    static let attributeBytes = 64 << 20
    /// Elements in one dataset: 2^31 float32 values is 8 GiB, beyond any MobileNetV2 variable.
    static let elements = 1 << 31
    /// Nesting depth of groups (a Keras 3 nested model is 4-6 levels deep).
    static let depth = 32
}

/// A group (folder) inside an HDF5 file. Keeps its file open while alive.
public final class HDF5Group {
    public let file: HDF5File
    public let path: String
    let id: hid_t

    init(file: HDF5File, id: hid_t, path: String) {
        self.file = file
        self.id = id
        self.path = path
    }

    deinit { if id >= 0 { H5Gclose(id) } }

    private func childPath(_ name: String) -> String { path == "/" ? "/" + name : path + "/" + name }

    private func fail(_ what: String) -> CriaError {
        CriaError("\(file.name): \(what): \(HDF5File.lastError())")
    }

    /// Names of the links in this group, in HDF5's name order.
    public func childNames() throws -> [String] {
        var info = H5G_info_t()
        guard id >= 0, H5Gget_info(id, &info) >= 0 else { throw fail("cannot list group \(path)") }
        guard info.nlinks <= HDF5Limits.links else {
            throw CriaError("\(file.name): group \(path) claims \(info.nlinks) links (corrupt file)")
        }
        var names: [String] = []
        for index in 0..<info.nlinks {
            let length = H5Lget_name_by_idx(id, ".", H5_INDEX_NAME, H5_ITER_INC, index, nil, 0, cria_h5p_default())
            guard length >= 0, length < 65_536 else { throw fail("cannot read a link name in \(path)") }
            var buffer = [CChar](repeating: 0, count: Int(length) + 1)
            guard H5Lget_name_by_idx(id, ".", H5_INDEX_NAME, H5_ITER_INC, index, &buffer, Int(length) + 1, cria_h5p_default()) >= 0 else {
                throw fail("cannot read a link name in \(path)")
            }
            names.append(String(cString: buffer))
        }
        return names
    }

    /// Whether `relative` (which may contain slashes) names an existing object.
    public func contains(_ relative: String) -> Bool {
        var prefix = ""
        for component in relative.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += prefix.isEmpty ? String(component) : "/" + component
            if H5Lexists(id, prefix, cria_h5p_default()) <= 0 { return false }
        }
        return !prefix.isEmpty
    }

    public func isGroup(_ relative: String) -> Bool { objectType(relative) == H5I_GROUP }
    public func isDataset(_ relative: String) -> Bool { objectType(relative) == H5I_DATASET }

    private func objectType(_ relative: String) -> H5I_type_t? {
        guard contains(relative) else { return nil }
        let object = H5Oopen(id, relative, cria_h5p_default())
        guard object >= 0 else { return nil }
        defer { H5Oclose(object) }
        return H5Iget_type(object)
    }

    public func group(_ relative: String) throws -> HDF5Group {
        guard isGroup(relative) else { throw CriaError("\(file.name): no group \(childPath(relative))") }
        let handle = H5Gopen2(id, relative, cria_h5p_default())
        guard handle >= 0 else { throw fail("cannot open group \(childPath(relative))") }
        return HDF5Group(file: file, id: handle, path: childPath(relative))
    }

    public func dataset(_ relative: String) throws -> HDF5Dataset {
        guard isDataset(relative) else { throw CriaError("\(file.name): no dataset \(childPath(relative))") }
        return HDF5Dataset(group: self, relative: relative, path: childPath(relative))
    }

    // MARK: Attributes

    public func attributeNames() -> [String] {
        var info = H5O_info_t()
        guard id >= 0, H5Oget_info2(id, &info, UInt32(H5O_INFO_NUM_ATTRS)) >= 0, info.num_attrs <= HDF5Limits.attributes else { return [] }
        return (0..<info.num_attrs).compactMap { index in
            let length = H5Aget_name_by_idx(id, ".", H5_INDEX_NAME, H5_ITER_INC, index, nil, 0, cria_h5p_default())
            guard length >= 0, length < 65_536 else { return nil }
            var buffer = [CChar](repeating: 0, count: Int(length) + 1)
            guard H5Aget_name_by_idx(id, ".", H5_INDEX_NAME, H5_ITER_INC, index, &buffer, Int(length) + 1, cria_h5p_default()) >= 0 else {
                return nil
            }
            return String(cString: buffer)
        }
    }

    public func hasAttribute(_ name: String) -> Bool { id >= 0 && H5Aexists(id, name) > 0 }

    /// A string attribute (scalar or the first element), fixed- or variable-length; nil when absent.
    public func stringAttribute(_ name: String) throws -> String? {
        try stringArrayAttribute(name)?.first
    }

    /// A string-array attribute such as Keras's `layer_names` or `weight_names`.
    ///
    /// Keras 2 writes fixed-length byte strings (numpy `S` arrays); Keras 3 and
    /// h5py's `str` write variable-length UTF-8. Both are read here.
    public func stringArrayAttribute(_ name: String) throws -> [String]? {
        guard hasAttribute(name) else { return nil }
        let attribute = H5Aopen(id, name, cria_h5p_default())
        guard attribute >= 0 else { throw fail("cannot open attribute \(path)@\(name)") }
        defer { H5Aclose(attribute) }
        let type = H5Aget_type(attribute)
        guard type >= 0 else { throw fail("cannot read the type of attribute \(path)@\(name)") }
        defer { H5Tclose(type) }
        let space = H5Aget_space(attribute)
        guard space >= 0 else { throw fail("cannot read the shape of attribute \(path)@\(name)") }
        defer { H5Sclose(space) }
        let points = Int(H5Sget_simple_extent_npoints(space))
        let spaceType = H5Sget_simple_extent_type(space)
        // h5py writes an empty list (a layer without weights) as an empty float array.
        if points == 0 && spaceType == H5S_SIMPLE { return [] }
        // The read below fills exactly `points` elements: the count must be sane before a buffer is sized from it.
        guard points >= 1, points <= HDF5Limits.strings, spaceType == H5S_SIMPLE || spaceType == H5S_SCALAR else {
            throw CriaError("\(file.name): attribute \(path)@\(name) has an invalid shape (corrupt file)")
        }
        guard H5Tget_class(type) == H5T_STRING else {
            throw CriaError("\(file.name): attribute \(path)@\(name) is not a string")
        }
        let count = points
        let memoryType = H5Tcopy(cria_h5t_c_s1())
        defer { H5Tclose(memoryType) }
        if H5Tis_variable_str(type) > 0 {
            let cset = H5Tget_cset(type)
            guard cset == H5T_CSET_ASCII || cset == H5T_CSET_UTF8 else {
                throw CriaError("\(file.name): attribute \(path)@\(name) has an invalid character set (corrupt file)")
            }
            H5Tset_size(memoryType, cria_h5t_variable())
            H5Tset_cset(memoryType, cset)
            var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
            guard H5Aread(attribute, memoryType, &pointers) >= 0 else { throw fail("cannot read attribute \(path)@\(name)") }
            let strings = pointers.map { $0.map { String(cString: $0) } ?? "" }
            H5Dvlen_reclaim(memoryType, space, cria_h5p_default(), &pointers)
            return strings
        }
        let size = H5Tget_size(type)
        guard size > 0, size <= HDF5Limits.attributeBytes, size * count <= HDF5Limits.attributeBytes else {
            throw CriaError("\(file.name): attribute \(path)@\(name) has an invalid string size (corrupt file)")
        }
        guard H5Tset_size(memoryType, size) >= 0 else { throw fail("cannot read attribute \(path)@\(name)") }
        var buffer = [UInt8](repeating: 0, count: size * count)
        guard H5Aread(attribute, memoryType, &buffer) >= 0 else { throw fail("cannot read attribute \(path)@\(name)") }
        return (0..<count).map { index in
            let bytes = buffer[index * size ..< (index + 1) * size].prefix { $0 != 0 }
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    // MARK: Writing

    public func createGroup(_ name: String) throws -> HDF5Group {
        let handle = H5Gcreate2(id, name, cria_h5p_default(), cria_h5p_default(), cria_h5p_default())
        guard handle >= 0 else { throw fail("cannot create group \(childPath(name))") }
        return HDF5Group(file: file, id: handle, path: childPath(name))
    }

    /// Writes a scalar variable-length UTF-8 string, as h5py does for Python `str`.
    public func setStringAttribute(_ name: String, _ value: String) throws {
        try writeStrings(name, [value], scalar: true)
    }

    /// Writes a 1-D array of variable-length UTF-8 strings (Keras 3's `layer_names`).
    public func setStringArrayAttribute(_ name: String, _ values: [String]) throws {
        try writeStrings(name, values, scalar: false)
    }

    private func writeStrings(_ name: String, _ values: [String], scalar: Bool) throws {
        if hasAttribute(name) { H5Adelete(id, name) }
        let type = H5Tcopy(cria_h5t_c_s1())
        defer { H5Tclose(type) }
        H5Tset_size(type, cria_h5t_variable())
        H5Tset_cset(type, H5T_CSET_UTF8)
        var dims: [hsize_t] = [hsize_t(values.count)]
        let space = scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dims, nil)
        defer { H5Sclose(space) }
        let attribute = H5Acreate2(id, name, type, space, cria_h5p_default(), cria_h5p_default())
        guard attribute >= 0 else { throw fail("cannot create attribute \(path)@\(name)") }
        defer { H5Aclose(attribute) }
        let cStrings = values.map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        var pointers: [UnsafePointer<CChar>?] = cStrings.map { UnsafePointer($0) }
        guard H5Awrite(attribute, type, &pointers) >= 0 else { throw fail("cannot write attribute \(path)@\(name)") }
    }

    /// Writes a float32 dataset with the given shape (Keras's kernel layouts are kept as they are).
    public func writeDataset(_ name: String, shape: [Int], scalars: [Float]) throws {
        precondition(shape.reduce(1, *) == scalars.count)
        var dims = shape.map { hsize_t($0) }
        let space = shape.isEmpty ? H5Screate(H5S_SCALAR) : H5Screate_simple(Int32(shape.count), &dims, nil)
        defer { H5Sclose(space) }
        let dataset = H5Dcreate2(id, name, cria_h5t_native_float(), space, cria_h5p_default(), cria_h5p_default(), cria_h5p_default())
        guard dataset >= 0 else { throw fail("cannot create dataset \(childPath(name))") }
        defer { H5Dclose(dataset) }
        let status = scalars.withUnsafeBufferPointer {
            H5Dwrite(dataset, cria_h5t_native_float(), cria_h5s_all(), cria_h5s_all(), cria_h5p_default(), $0.baseAddress)
        }
        guard status >= 0 else { throw fail("cannot write dataset \(childPath(name))") }
    }
}

/// A dataset, read on demand as float32 whatever its stored float type.
public struct HDF5Dataset {
    let group: HDF5Group
    let relative: String
    public let path: String

    private func open() throws -> hid_t {
        let handle = H5Dopen2(group.id, relative, cria_h5p_default())
        guard handle >= 0 else {
            throw CriaError("\(group.file.name): cannot open dataset \(path): \(HDF5File.lastError())")
        }
        return handle
    }

    public func shape() throws -> [Int] {
        let dataset = try open()
        defer { H5Dclose(dataset) }
        let space = H5Dget_space(dataset)
        guard space >= 0 else { throw CriaError("\(group.file.name): cannot read the shape of dataset \(path): \(HDF5File.lastError())") }
        defer { H5Sclose(space) }
        let rank = Int(H5Sget_simple_extent_ndims(space))
        guard rank >= 0, rank <= 32 else { throw CriaError("\(group.file.name): dataset \(path) has no simple shape") }
        var dims = [hsize_t](repeating: 0, count: rank)
        guard H5Sget_simple_extent_dims(space, &dims, nil) == rank else {
            throw CriaError("\(group.file.name): cannot read the shape of dataset \(path): \(HDF5File.lastError())")
        }
        // Multiply with overflow checks: the build is -Ounchecked, and a corrupted dimension can be near 2^64.
        var elements = 1
        for dim in dims {
            let (product, overflow) = elements.multipliedReportingOverflow(by: Int(clamping: dim))
            guard !overflow, dim <= UInt64(HDF5Limits.elements), product <= HDF5Limits.elements else {
                throw CriaError("\(group.file.name): dataset \(path) has an impossible shape \(dims) (corrupt file)")
            }
            elements = product
        }
        return dims.map { Int($0) }
    }

    public func read() throws -> Tensor {
        let shape = try self.shape()
        let dataset = try open()
        defer { H5Dclose(dataset) }
        let type = H5Dget_type(dataset)
        guard type >= 0 else { throw CriaError("\(group.file.name): cannot read the type of dataset \(path): \(HDF5File.lastError())") }
        defer { H5Tclose(type) }
        guard H5Tget_class(type) == H5T_FLOAT || H5Tget_class(type) == H5T_INTEGER else {
            throw CriaError("\(group.file.name): dataset \(path) is not numeric")
        }
        guard cria_h5t_is_plain_number(type) != 0 else {
            throw CriaError("\(group.file.name): dataset \(path) has a number type Cria does not read (not IEEE float32/float64 or a plain integer; corrupt file?)")
        }
        // The read below fills the buffer from the dataset's own space: it must match the shape sized here.
        let space = H5Dget_space(dataset)
        guard space >= 0 else { throw CriaError("\(group.file.name): cannot read the shape of dataset \(path): \(HDF5File.lastError())") }
        let points = H5Sget_simple_extent_npoints(space)
        H5Sclose(space)
        guard points == shape.reduce(1, *) else {
            throw CriaError("\(group.file.name): dataset \(path) changed shape while being read (corrupt file)")
        }
        if group.hasDatasetAttribute(relative, "dtype", equalTo: "bfloat16") {
            throw CriaError("\(group.file.name): dataset \(path) is stored as bfloat16, which Cria does not read; re-save the model in float32")
        }
        var scalars = [Float](repeating: 0, count: shape.reduce(1, *))
        let status = scalars.withUnsafeMutableBufferPointer {
            H5Dread(dataset, cria_h5t_native_float(), cria_h5s_all(), cria_h5s_all(), cria_h5p_default(), $0.baseAddress)
        }
        guard status >= 0 else {
            throw CriaError("\(group.file.name): cannot read dataset \(path) (is the file truncated?): \(HDF5File.lastError())")
        }
        return Tensor(shape: shape, scalars: scalars)
    }
}

extension HDF5Group {
    fileprivate func hasDatasetAttribute(_ relative: String, _ name: String, equalTo value: String) -> Bool {
        guard H5Aexists_by_name(id, relative, name, cria_h5p_default()) > 0 else { return false }
        let dataset = H5Oopen(id, relative, cria_h5p_default())
        guard dataset >= 0 else { return false }
        defer { H5Oclose(dataset) }
        return (try? HDF5AttributeReader.string(objectID: dataset, name: name, file: file.name)) == value
    }
}

/// Attribute reading on any object id, shared by groups and datasets.
enum HDF5AttributeReader {
    static func string(objectID: hid_t, name: String, file: String) throws -> String? {
        let attribute = H5Aopen(objectID, name, cria_h5p_default())
        guard attribute >= 0 else { return nil }
        defer { H5Aclose(attribute) }
        let type = H5Aget_type(attribute)
        guard type >= 0 else { return nil }
        defer { H5Tclose(type) }
        guard H5Tget_class(type) == H5T_STRING else { return nil }
        // H5Aread fills one element per point: only a single string fits the buffers below.
        let space = H5Aget_space(attribute)
        guard space >= 0 else { return nil }
        let points = H5Sget_simple_extent_npoints(space)
        H5Sclose(space)
        guard points == 1 else { return nil }
        let memoryType = H5Tcopy(cria_h5t_c_s1())
        defer { H5Tclose(memoryType) }
        if H5Tis_variable_str(type) > 0 {
            H5Tset_size(memoryType, cria_h5t_variable())
            var pointer: UnsafeMutablePointer<CChar>? = nil
            guard H5Aread(attribute, memoryType, &pointer) >= 0, let pointer else { return nil }
            defer { free(pointer) }
            return String(cString: pointer)
        }
        let size = H5Tget_size(type)
        guard size > 0, size <= HDF5Limits.attributeBytes, H5Tset_size(memoryType, size) >= 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: size)
        guard H5Aread(attribute, memoryType, &buffer) >= 0 else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self)
    }
}
