using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace RsCapRet.Model.Checkpoints;

/// <summary>
/// A Hugging Face checkpoint folder: model.safetensors, or shards listed in model.safetensors.index.json.
/// Loads parameters by name into a module whose parameter names follow the Hugging Face layout.
/// </summary>
public sealed class Checkpoint : IDisposable
{
    private readonly Dictionary<string, SafetensorsFile> _byTensor = new();
    private readonly List<SafetensorsFile> _files = [];

    public string Location { get; }
    public IEnumerable<string> TensorNames => _byTensor.Keys;

    private Checkpoint(string location) => Location = location;

    /// <summary>Opens a checkpoint folder (or a single .safetensors file).</summary>
    public static Checkpoint Open(string location)
    {
        var full = Path.GetFullPath(location);
        var ckpt = new Checkpoint(full);
        try
        {
            if (File.Exists(full)) ckpt.Add(SafetensorsFile.Open(full));
            else if (Directory.Exists(full))
            {
                var index = Path.Combine(full, "model.safetensors.index.json");
                var single = Path.Combine(full, "model.safetensors");
                if (File.Exists(index)) ckpt.AddShards(index);
                else if (File.Exists(single)) ckpt.Add(SafetensorsFile.Open(single));
                else throw new CheckpointException(full, "holds neither model.safetensors nor model.safetensors.index.json");
            }
            else throw new CheckpointException(full, "does not exist");
            return ckpt;
        }
        catch
        {
            ckpt.Dispose();
            throw;
        }
    }

    private void AddShards(string indexPath)
    {
        Dictionary<string, string> weightMap;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(indexPath));
            weightMap = doc.RootElement.GetProperty("weight_map").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new CheckpointException(indexPath, "is not a valid safetensors index (needs a 'weight_map' object): " + e.Message, e);
        }
        var dir = Path.GetDirectoryName(indexPath)!;
        foreach (var shard in weightMap.Values.Distinct())
        {
            var file = SafetensorsFile.Open(Path.Combine(dir, shard));
            _files.Add(file);
            foreach (var (tensor, s) in weightMap)
                if (s == shard)
                {
                    if (!file.Entries.ContainsKey(tensor))
                        throw new CheckpointException(file.Path, $"is listed in {Path.GetFileName(indexPath)} for tensor '{tensor}' but does not contain it");
                    _byTensor[tensor] = file;
                }
        }
    }

    private void Add(SafetensorsFile file)
    {
        _files.Add(file);
        foreach (var name in file.Entries.Keys) _byTensor[name] = file;
    }

    public bool Contains(string name) => _byTensor.ContainsKey(name);

    public SafetensorsEntry Entry(string name) => FileOf(name).Entry(name);

    public Tensor Read(string name, ScalarType? dtype = null) => FileOf(name).Read(name, dtype);

    public void CopyInto(string name, Tensor target, string? targetName = null) => FileOf(name).CopyInto(name, target, targetName);

    private SafetensorsFile FileOf(string name) =>
        _byTensor.TryGetValue(name, out var f) ? f : throw new CheckpointException(Location, $"is missing tensor '{name}'");

    /// <summary>
    /// Loads every parameter (and persistent buffer) of <paramref name="module"/> from tensors named
    /// <paramref name="prefix"/> + the parameter's name. Missing tensors and shape mismatches are errors;
    /// extra tensors in the checkpoint are ignored (e.g. rotary caches).
    /// </summary>
    public void LoadInto(nn.Module module, string prefix = "", IReadOnlySet<string>? skip = null)
    {
        foreach (var (name, param) in module.named_parameters())
        {
            if (skip?.Contains(name) == true) continue;
            CopyInto(prefix + name, param, name);
        }
    }

    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
        _files.Clear();
        _byTensor.Clear();
    }
}

/// <summary>Writes .safetensors files (heads, training checkpoints, benchmark checkpoints).</summary>
public static class SafetensorsWriter
{
    private static string DTypeName(ScalarType t) => t switch
    {
        ScalarType.Float32 => "F32",
        ScalarType.Float16 => "F16",
        ScalarType.BFloat16 => "BF16",
        ScalarType.Float64 => "F64",
        ScalarType.Int64 => "I64",
        ScalarType.Int32 => "I32",
        ScalarType.Int16 => "I16",
        ScalarType.Int8 => "I8",
        ScalarType.Byte => "U8",
        ScalarType.Bool => "BOOL",
        _ => throw new NotSupportedException($"safetensors has no dtype for {t}"),
    };

    /// <summary>Writes <paramref name="tensors"/> (in order) to <paramref name="path"/> atomically (temp file + rename).</summary>
    public static void Write(string path, IEnumerable<(string Name, Tensor Tensor)> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        var header = new Dictionary<string, object>();
        if (metadata != null) header["__metadata__"] = metadata;
        long offset = 0;
        foreach (var (name, t) in list)
        {
            var bytes = t.NumberOfElements * t.ElementSize;
            header[name] = new { dtype = DTypeName(t.dtype), shape = t.shape, data_offsets = new[] { offset, offset + bytes } };
            offset += bytes;
        }
        var json = JsonSerializer.SerializeToUtf8Bytes(header);
        var pad = (8 - json.Length % 8) % 8; // keep tensor data 8-byte aligned, as the reference writer does
        var headerBytes = new byte[json.Length + pad];
        json.CopyTo(headerBytes, 0);
        for (var i = json.Length; i < headerBytes.Length; i++) headerBytes[i] = (byte)' ';

        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var tmp = path + ".tmp";
        using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write))
        {
            fs.Write(BitConverter.GetBytes((long)headerBytes.Length));
            fs.Write(headerBytes);
            foreach (var (_, t) in list)
            {
                using var cpu = t.detach().cpu().contiguous();
                TensorBytes.ForEachChunk(cpu, TensorBytes.MaxChunkBytes, chunk => fs.Write(chunk));
            }
        }
        File.Move(tmp, path, overwrite: true);
    }
}

/// <summary>
/// A contiguous CPU tensor's storage as byte spans of at most <see cref="MaxChunkBytes"/>: TorchSharp exposes the
/// storage as one span, which stops at int.MaxValue bytes, and feature caches grow beyond that (4.2 GB for a ResNet's
/// 128×28×28 maps of 10k images in two views).
/// </summary>
public static class TensorBytes
{
    public const long MaxChunkBytes = 1L << 30;

    public delegate void ChunkAction(Span<byte> chunk);

    /// <summary>Calls <paramref name="action"/> on consecutive pieces of <paramref name="contiguous"/>'s bytes, in order.</summary>
    public static void ForEachChunk(Tensor contiguous, long maxChunkBytes, ChunkAction action)
    {
        if (!contiguous.is_contiguous() || contiguous.device_type != DeviceType.CPU)
            throw new ArgumentException("the tensor must be contiguous and on the CPU", nameof(contiguous));
        var total = contiguous.NumberOfElements;
        if (total == 0) return;
        var perChunk = Math.Max(1, maxChunkBytes / contiguous.ElementSize);
        using var flat = contiguous.view(-1);
        for (long start = 0; start < total; start += perChunk)
        {
            using var piece = flat.narrow(0, start, Math.Min(perChunk, total - start));
            action(piece.bytes);
        }
    }
}
