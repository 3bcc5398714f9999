using System.Text;
using System.Text.Json;
using RsCapRet.Model.Checkpoints;
using static TorchSharp.torch;

namespace RsCapRet.Model.Tests;

public sealed class CheckpointTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-ckpt-");
    public void Dispose() => _dir.Delete(true);
    private string P(string name) => Path.Combine(_dir.FullName, name);
    private static string TinyLlama => Path.Combine(Fixtures.ParityRoot, "tiny-a", "llama");

    private static void CopyLlama(string to, Func<byte[], byte[]>? mutate = null, Func<string, string>? mutateConfig = null)
    {
        Directory.CreateDirectory(to);
        var cfg = File.ReadAllText(Path.Combine(TinyLlama, "config.json"));
        File.WriteAllText(Path.Combine(to, "config.json"), mutateConfig?.Invoke(cfg) ?? cfg);
        var bytes = File.ReadAllBytes(Path.Combine(TinyLlama, "model.safetensors"));
        File.WriteAllBytes(Path.Combine(to, "model.safetensors"), mutate?.Invoke(bytes) ?? bytes);
    }

    [Fact]
    public void TruncatedFileNamesTheFileAndTheTensor()
    {
        var dir = P("trunc");
        CopyLlama(dir, b => b[..(b.Length - 1000)]);
        var ex = Assert.Throws<CheckpointException>(() => LlamaForCausalLM.FromPretrained(dir));
        Assert.Contains(Path.Combine(dir, "model.safetensors"), ex.Message);
        Assert.Contains("truncated", ex.Message);
    }

    [Fact]
    public void WrongShapesNameTheTensorAndBothShapes()
    {
        var dir = P("shape");
        // A config with a larger vocabulary than the weights hold.
        CopyLlama(dir, mutateConfig: c => c.Replace("\"vocab_size\": 320", "\"vocab_size\": 400"));
        var ex = Assert.Throws<CheckpointException>(() => LlamaForCausalLM.FromPretrained(dir));
        Assert.Contains("model.embed_tokens.weight", ex.Message);
        Assert.Contains("[320, 64]", ex.Message);
        Assert.Contains("[400, 64]", ex.Message);
    }

    [Fact]
    public void MissingTensorIsNamed()
    {
        var dir = P("missing");
        CopyLlama(dir, mutateConfig: c => c.Replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3"));
        var ex = Assert.Throws<CheckpointException>(() => LlamaForCausalLM.FromPretrained(dir));
        Assert.Contains("missing tensor 'model.layers.2.", ex.Message);
    }

    [Fact]
    public void BadHeaderAndUnsupportedDtypeAreClear()
    {
        var bad = P("bad.safetensors");
        File.WriteAllBytes(bad, [.. BitConverter.GetBytes(12L), .. "{not json!!}"u8.ToArray()]);
        var ex = Assert.Throws<CheckpointException>(() => SafetensorsFile.Open(bad));
        Assert.Contains(bad, ex.Message);
        Assert.Contains("bad safetensors header", ex.Message);

        var huge = P("huge.safetensors");
        File.WriteAllBytes(huge, [.. BitConverter.GetBytes(1L << 40), 0, 0]);
        Assert.Contains("header length", Assert.Throws<CheckpointException>(() => SafetensorsFile.Open(huge)).Message);

        var f8 = P("f8.safetensors");
        var header = Encoding.UTF8.GetBytes("{\"x\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}");
        File.WriteAllBytes(f8, [.. BitConverter.GetBytes((long)header.Length), .. header, 1, 2]);
        using var file = SafetensorsFile.Open(f8);
        var dt = Assert.Throws<CheckpointException>(() => file.Read("x"));
        Assert.Contains("unsupported dtype F8_E4M3", dt.Message);

        Assert.Contains("does not exist", Assert.Throws<CheckpointException>(() => Checkpoint.Open(P("nope"))).Message);
    }

    [Fact]
    public void WriterRoundTripsF32F16Bf16AndShardedIndexLoads()
    {
        using var scope = NewDisposeScope();
        var a = arange(0, 12, ScalarType.Float32).view(3, 4) / 7f;
        var b = a.to_type(ScalarType.BFloat16);
        var c = a.to_type(ScalarType.Float16);
        SafetensorsWriter.Write(P("shard-1.safetensors"), [("a", a), ("b", b)]);
        SafetensorsWriter.Write(P("shard-2.safetensors"), [("c", c), ("i", tensor(new long[] { 1, 2, 3 }))]);
        File.WriteAllText(P("model.safetensors.index.json"), JsonSerializer.Serialize(new
        {
            metadata = new { total_size = 0 },
            weight_map = new Dictionary<string, string> { ["a"] = "shard-1.safetensors", ["b"] = "shard-1.safetensors", ["c"] = "shard-2.safetensors", ["i"] = "shard-2.safetensors" },
        }));
        using var ckpt = Checkpoint.Open(_dir.FullName);
        Assert.Equal("BF16", ckpt.Entry("b").DType);
        Assert.Equal("F16", ckpt.Entry("c").DType);
        Fixtures.AssertClose(ckpt.Read("a"), a, "f32", 0);
        Fixtures.AssertClose(ckpt.Read("b", ScalarType.Float32), b.to_type(ScalarType.Float32), "bf16", 0);
        Fixtures.AssertClose(ckpt.Read("c", ScalarType.Float32), c.to_type(ScalarType.Float32), "f16", 0);
        var target = zeros(3, 4);
        ckpt.CopyInto("b", target);                        // bf16 on disk -> f32 parameter
        Fixtures.AssertClose(target, b.to_type(ScalarType.Float32), "bf16 into f32", 0);
        Assert.Equal(new long[] { 1, 2, 3 }, ckpt.Read("i").data<long>().ToArray());
    }

    [Fact]
    public void IndexNamingAShardWithoutTheTensorIsAnError()
    {
        using var scope = NewDisposeScope();
        SafetensorsWriter.Write(P("s.safetensors"), [("a", ones(2))]);
        File.WriteAllText(P("model.safetensors.index.json"), "{\"weight_map\": {\"a\": \"s.safetensors\", \"z\": \"s.safetensors\"}}");
        var ex = Assert.Throws<CheckpointException>(() => Checkpoint.Open(_dir.FullName));
        Assert.Contains("'z'", ex.Message);
    }

    [Fact]
    public void TensorBytesComeInOrderedPiecesOfAtMostTheChunkSize()
    {
        // A view that starts inside its storage (offset 7 floats): the pieces must be its own bytes, not the storage's.
        using var storage = arange(0, 100, dtype: ScalarType.Float32);
        using var view = storage.narrow(0, 7, 50);
        var pieces = new List<int>();
        var floats = new List<float>();
        TensorBytes.ForEachChunk(view, 12, chunk =>
        {
            pieces.Add(chunk.Length);
            floats.AddRange(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(chunk).ToArray());
        });
        Assert.All(pieces, n => Assert.True(n <= 12));
        Assert.Equal(17, pieces.Count);   // 50 floats, 3 per piece
        Assert.Equal(Enumerable.Range(7, 50).Select(i => (float)i), floats);
        using var strided = storage.view(10, 10).t();
        Assert.Throws<ArgumentException>(() => TensorBytes.ForEachChunk(strided, 12, _ => { }));
    }
}
