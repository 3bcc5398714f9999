using System.IO.MemoryMappedFiles;
using System.Text;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace RsCapRet.Model.Checkpoints;

/// <summary>A checkpoint that cannot be used, with the file and the problem (bad header, truncation, shapes...).</summary>
public sealed class CheckpointException(string path, string problem, Exception? inner = null)
    : Exception($"{path}: {problem}", inner)
{
    public string Path { get; } = path;
}

/// <summary>One tensor's entry in a safetensors header.</summary>
public sealed record SafetensorsEntry(string Name, string DType, long[] Shape, long Begin, long End)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// A memory-mapped .safetensors file (8-byte little-endian header length, JSON header, raw little-endian data).
/// Tensors are copied from the mapping straight into their destination, one tensor at a time, so loading never
/// holds a managed copy of the file.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    private static readonly Dictionary<string, (ScalarType Type, int Size)> DTypes = new()
    {
        ["F32"] = (ScalarType.Float32, 4), ["F16"] = (ScalarType.Float16, 2), ["BF16"] = (ScalarType.BFloat16, 2),
        ["F64"] = (ScalarType.Float64, 8), ["I64"] = (ScalarType.Int64, 8), ["I32"] = (ScalarType.Int32, 4),
        ["I16"] = (ScalarType.Int16, 2), ["I8"] = (ScalarType.Int8, 1), ["U8"] = (ScalarType.Byte, 1), ["BOOL"] = (ScalarType.Bool, 1),
    };

    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly byte* _data;   // first byte after the header
    private readonly long _dataLength;

    public string Path { get; }
    public IReadOnlyDictionary<string, SafetensorsEntry> Entries { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }

    private SafetensorsFile(string path)
    {
        Path = path;
        if (!File.Exists(path)) throw new CheckpointException(path, "does not exist");
        var length = new FileInfo(path).Length;
        if (length < 8) throw new CheckpointException(path, $"is truncated: {length} bytes, too short for a safetensors header");
        long headerLength;
        string headerJson;
        using (var fs = File.OpenRead(path))
        {
            Span<byte> len = stackalloc byte[8];
            fs.ReadExactly(len);
            headerLength = BitConverter.ToInt64(len);
            if (headerLength <= 0 || headerLength > 100_000_000 || 8 + headerLength > length)
                throw new CheckpointException(path, $"bad safetensors header: header length {headerLength} does not fit a {length}-byte file");
            var header = new byte[headerLength];
            fs.ReadExactly(header);
            headerJson = Encoding.UTF8.GetString(header);
        }
        var entries = new Dictionary<string, SafetensorsEntry>();
        var metadata = new Dictionary<string, string>();
        try
        {
            using var doc = JsonDocument.Parse(headerJson);
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (prop.Name == "__metadata__")
                {
                    foreach (var m in prop.Value.EnumerateObject()) metadata[m.Name] = m.Value.ToString();
                    continue;
                }
                var dtype = prop.Value.GetProperty("dtype").GetString()!;
                var shape = prop.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
                var offsets = prop.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
                if (offsets.Length != 2) throw new CheckpointException(path, $"bad safetensors header: tensor '{prop.Name}' has {offsets.Length} data offsets");
                entries[prop.Name] = new SafetensorsEntry(prop.Name, dtype, shape, offsets[0], offsets[1]);
            }
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or KeyNotFoundException or FormatException)
        {
            throw new CheckpointException(path, "bad safetensors header: " + e.Message, e);
        }
        _dataLength = length - 8 - headerLength;
        foreach (var e in entries.Values)
        {
            if (e.Begin < 0 || e.End < e.Begin)
                throw new CheckpointException(path, $"bad safetensors header: tensor '{e.Name}' has offsets [{e.Begin}, {e.End})");
            if (e.End > _dataLength)
                throw new CheckpointException(path, $"is truncated: tensor '{e.Name}' ends at byte {e.End} of the data, but the file holds {_dataLength} data bytes");
            if (DTypes.TryGetValue(e.DType, out var dt) && e.ElementCount * dt.Size != e.End - e.Begin)
                throw new CheckpointException(path, $"bad safetensors header: tensor '{e.Name}' ({e.DType} [{string.Join(", ", e.Shape)}]) " +
                                                    $"needs {e.ElementCount * dt.Size} bytes but has {e.End - e.Begin}");
        }
        Entries = entries;
        Metadata = metadata;
        if (length > 0)
        {
            _map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* p = null;
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            _data = p + _view.PointerOffset + 8 + headerLength;
        }
    }

    public static SafetensorsFile Open(string path) => new(System.IO.Path.GetFullPath(path));

    public SafetensorsEntry Entry(string name) =>
        Entries.TryGetValue(name, out var e) ? e : throw new CheckpointException(Path, $"has no tensor '{name}'");

    /// <summary>A new CPU tensor holding <paramref name="name"/>, in its stored dtype unless <paramref name="dtype"/> is given.</summary>
    public Tensor Read(string name, ScalarType? dtype = null)
    {
        var e = Entry(name);
        var stored = StoredType(e);
        var t = empty(e.Shape, stored);
        FillRaw(e, t);
        if (dtype is { } d && d != stored)
        {
            var converted = t.to_type(d);
            t.Dispose();
            return converted;
        }
        return t;
    }

    /// <summary>Copies <paramref name="name"/> into <paramref name="target"/> (converting dtype/device), checking the shape.</summary>
    public void CopyInto(string name, Tensor target, string? targetName = null)
    {
        var e = Entry(name);
        if (!e.Shape.SequenceEqual(target.shape))
            throw new CheckpointException(Path, $"shape mismatch for tensor '{name}': the checkpoint has [{string.Join(", ", e.Shape)}], " +
                                                $"the model{(targetName is null || targetName == name ? "" : $" ('{targetName}')")} expects [{string.Join(", ", target.shape)}]");
        var stored = StoredType(e);
        using var _ = no_grad();
        if (stored == target.dtype && target.device_type == DeviceType.CPU && target.is_contiguous())
        {
            FillRaw(e, target);
            return;
        }
        using var tmp = empty(e.Shape, stored);
        FillRaw(e, tmp);
        target.copy_(tmp);
    }

    private ScalarType StoredType(SafetensorsEntry e) =>
        DTypes.TryGetValue(e.DType, out var dt) ? dt.Type
            : throw new CheckpointException(Path, $"tensor '{e.Name}' has unsupported dtype {e.DType} (supported: {string.Join(", ", DTypes.Keys)})");

    private void FillRaw(SafetensorsEntry e, Tensor t)
    {
        var bytes = e.End - e.Begin;
        if (bytes == 0) return;
        // Straight from the mapping into the tensor's storage, in pieces below TorchSharp's 2 GB span limit.
        var expected = t.NumberOfElements * t.ElementSize;
        if (expected != bytes) throw new CheckpointException(Path, $"tensor '{e.Name}' has {bytes} bytes, its destination {expected}");
        long done = 0;
        TensorBytes.ForEachChunk(t, TensorBytes.MaxChunkBytes, dst =>
        {
            new ReadOnlySpan<byte>(_data + e.Begin + done, dst.Length).CopyTo(dst);
            ReleasePages(_data + e.Begin + done, dst.Length);
            done += dst.Length;
        });
    }

    // A mapped page that was read stays resident (and counts in the process's RSS) until unmapped. Loading copies
    // each tensor once, so its pages are dropped right after: peak memory stays near the model's own size.
    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "madvise", SetLastError = false)]
    private static extern int Madvise(IntPtr address, UIntPtr length, int advice);
    private const int MADV_DONTNEED = 4;

    private static void ReleasePages(byte* start, long length)
    {
        if (!OperatingSystem.IsLinux()) return;
        const long page = 4096;
        var first = ((long)start + page - 1) / page * page;        // whole pages inside the range only
        var last = ((long)start + length) / page * page;
        if (last > first) _ = Madvise(new IntPtr(first), new UIntPtr((ulong)(last - first)), MADV_DONTNEED);   // advice only: a refusal changes nothing
    }

    public void Dispose()
    {
        if (_view != null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _map?.Dispose();
    }
}
