import Foundation
import Tensors
import Testing

/// The checked arithmetic every file-derived count goes through, and the layout computed with it: no input traps.
@Suite("checked arithmetic and layouts")
struct CheckedLayoutTests {
    @Test("add, multiply, product and UInt64 conversion report overflow instead of trapping")
    func helpers() {
        #expect(Checked.add(.max, 1) == nil && Checked.add(.max - 1, 1) == .max && Checked.add(-3, 5) == 2)
        #expect(Checked.multiply(1 << 32, 1 << 31) == nil && Checked.multiply(1 << 31, 1 << 31) == 1 << 62)
        #expect(Checked.multiply(.min, -1) == nil)
        #expect(Checked.product([]) == 1 && Checked.product([2, 3, 7]) == 42)
        #expect(Checked.product([1 << 40, 1 << 40]) == nil)
        // Any zero makes the product 0 before any factor is multiplied, wherever it is.
        #expect(Checked.product([0, 1 << 40, 1 << 40]) == 0 && Checked.product([1 << 40, 1 << 40, 1 << 40, 0]) == 0)
        #expect(Checked.int(UInt64(Int.max)) == .max && Checked.int(UInt64(Int.max) + 1) == nil && Checked.int(.max) == nil)
        #expect(Checked.saturatingAdd(.max, .max) == .max && Checked.saturatingMultiply(1 << 62, 4) == .max)
        #expect(Checked.saturatingAdd(2, 3) == 5 && Checked.saturatingMultiply(6, 7) == 42)
    }

    @Test("fits(offset:count:in:) never overflows", arguments: [
        (0, 0, 0, true), (0, 10, 10, true), (5, 5, 10, true), (5, 6, 10, false), (11, 0, 10, false),
        (-1, 1, 10, false), (1, -1, 10, false), (Int.max, Int.max, Int.max, false), (1, Int.max, Int.max, false),
        (Int.max, 0, Int.max, true),
    ])
    func fits(_ c: (Int, Int, Int, Bool)) {
        #expect(Checked.fits(offset: c.0, count: c.1, in: c.2) == c.3)
    }

    @Test("empty tensors: any zero dimension gives no elements, contiguous, whatever the other dimensions")
    func emptyLayouts() throws {
        for shape in [[0, 1 << 40, 1 << 40], [1 << 40, 1 << 40, 1 << 40, 0], [0], [3, 0, Int.max]] {
            let layout = try TensorGeometry(contiguous: shape)
            #expect(layout.elementCount == 0 && layout.isContiguous && layout.storageExtent == 0, "\(shape)")
            #expect(try layout.byteCount(of: .c128) == 0)
        }
        // An empty view reads nothing, so a far storage offset and odd strides are fine.
        let view = try TensorGeometry(shape: [0, 5], strides: [Int.max, 0], offset: 1 << 62)
        #expect(view.elementCount == 0 && view.isContiguous && view.storageExtent == 1 << 62)
    }

    @Test("products, extents and byte counts that pass 2^63 throw instead of trapping")
    func overflowingLayouts() throws {
        #expect(throws: TensorsError.self) { try TensorGeometry(contiguous: [1 << 40, 1 << 40]) }
        #expect(throws: TensorsError.self) { try TensorGeometry(shape: [2, 2], strides: [1 << 62, 1 << 62]) }
        #expect(throws: TensorsError.self) { try TensorGeometry(shape: [2], strides: [1], offset: .max) }
        #expect(throws: TensorsError.self) { try TensorGeometry(shape: [3], strides: [Int.max]) }
        // Elements fit, bytes do not: byteCount(of:) throws with the dtype.
        let wide = try TensorGeometry(shape: [1 << 31, 1 << 31], strides: [0, 0])
        #expect(wide.elementCount == 1 << 62 && wide.storageExtent == 1 && !wide.isContiguous)
        #expect(throws: TensorsError.sizeOverflow(shape: [1 << 31, 1 << 31], dtype: .f32)) { try wide.byteCount(of: .f32) }
    }

    @Test("size-1 dimensions may carry any stride; contiguity checks never overflow")
    func sizeOneStrides() throws {
        let layout = try TensorGeometry(shape: [1, 2, 1], strides: [Int.max, 1, Int.max])
        #expect(layout.isContiguous && layout.storageExtent == 2)
        let big = try TensorGeometry(contiguous: [1 << 20, 1 << 20, 1 << 20])
        #expect(big.isContiguous && big.elementCount == 1 << 60)
        #expect(try !TensorGeometry(shape: [4, 2], strides: [0, 1]).isContiguous)
    }

    @Test("MappedFile refuses a named pipe at once instead of waiting for a writer, and a directory, by kind")
    func notRegularFiles() throws {
        let dir = NSTemporaryDirectory() + "ditkit-checked-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fifo = dir + "/pipe.pt"
        #expect(mkfifo(fifo, 0o600) == 0)
        let start = Date()
        #expect(throws: TensorsError.notRegularFile(path: fifo, kind: "a named pipe (FIFO)")) { try MappedFile(path: fifo) }
        #expect(Date().timeIntervalSince(start) < 2)
        #expect(throws: TensorsError.notRegularFile(path: dir, kind: "a directory")) { try MappedFile(path: dir) }
        #expect(throws: TensorsError.notRegularFile(path: "/dev/zero", kind: "a character device")) {
            try MappedFile(path: "/dev/zero")
        }
        let message = TensorsError.notRegularFile(path: fifo, kind: "a named pipe (FIFO)").description
        #expect(message.contains(fifo) && message.contains("named pipe") && message.contains("regular files only"))
    }
}
