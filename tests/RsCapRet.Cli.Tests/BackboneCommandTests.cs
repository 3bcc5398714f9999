using RsCapRet.Cli;
using RsCapRet.Model;
using RsCapRet.TestSupport;
using static TorchSharp.torch;

namespace RsCapRet.Cli.Tests;

/// <summary>`rscapret copy-backbone`: the half-precision copy a committed backbone uses loads and encodes like the original.</summary>
public sealed class BackboneCommandTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-backbone-cmd-");
    public void Dispose() => _dir.Delete(true);

    private string TinyBackbone()
    {
        var dir = Path.Combine(_dir.FullName, "tiny");
        using var resnet = TinyResNet.Create(seed: 11, blocks: [1, 1, 1, 1]);
        // As in the ImageNet ResNet18, whose 0-255 input gives the stem's batch norm variances beyond float16's range.
        using (no_grad()) resnet.StateTensors().Single(n => n.Name == "bn1.running_var").Tensor[0] = 2e5f;
        resnet.SavePretrained(dir);
        return dir;
    }

    [Fact]
    public async Task AHalfPrecisionCopyIsHalfTheSizeAndEncodesAlikeKeepingOutOfRangeTensorsInFloat32()
    {
        var source = TinyBackbone();
        var copy = Path.Combine(_dir.FullName, "half");
        var output = new StringWriter();
        var error = new StringWriter();
        Assert.Equal(0, await CliApp.RunAsync(["copy-backbone", source, "--out", copy], output, error));
        Assert.Contains("float16", output.ToString());
        Assert.Contains("kept float32 (values beyond float16's range): bn1.running_var", output.ToString());
        using (var file = RsCapRet.Model.Checkpoints.Checkpoint.Open(copy))
            foreach (var name in file.TensorNames)
            {
                using var t = file.Read(name);
                Assert.Equal(name == "bn1.running_var" ? ScalarType.Float32 : ScalarType.Float16, t.dtype);
            }
        var before = new FileInfo(Path.Combine(source, "model.safetensors")).Length;
        var after = new FileInfo(Path.Combine(copy, "model.safetensors")).Length;
        Assert.InRange(after, before * 0.45, before * 0.6);    // the header is not halved

        using var original = VisionBackbones.FromPretrained(source);
        using var half = VisionBackbones.FromPretrained(copy);
        using var pixels = rand(2, 3, 32, 32, generator: new Generator(3)) * 255;
        using var a = original.Pooled(pixels);
        using var b = half.Pooled(pixels);
        Assert.Equal(ScalarType.Float32, b.dtype);
        var scale = a.abs().max().item<float>();
        Assert.True(a.sub(b).abs().max().item<float>() < 2e-2 * scale, "the half-precision copy drifted");
    }

    [Fact]
    public async Task CopyingOntoItselfOrToAnUnknownTypeIsRefused()
    {
        var source = TinyBackbone();
        var error = new StringWriter();
        Assert.NotEqual(0, await CliApp.RunAsync(["copy-backbone", source, "--out", source], new StringWriter(), error));
        Assert.Contains("--out", error.ToString());
        Assert.Contains("source folder", error.ToString());
        error = new StringWriter();
        Assert.NotEqual(0, await CliApp.RunAsync(["copy-backbone", source, "--out", Path.Combine(_dir.FullName, "x"), "--dtype", "float64"], new StringWriter(), error));
        Assert.Contains("float64", error.ToString());
        Assert.False(Directory.Exists(Path.Combine(_dir.FullName, "x")));
    }
}
