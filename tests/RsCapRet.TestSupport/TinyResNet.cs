using RsCapRet.Model;
using static TorchSharp.torch;

namespace RsCapRet.TestSupport;

/// <summary>
/// A small ResNet (widths 4/8/8/16, 32 px, CNTK paddings) with random weights and unit running variances, built in
/// milliseconds: for tests of shapes and plumbing (caching, adaptation, copying), not of quality.
/// </summary>
public static class TinyResNet
{
    public static ResNetVisionModel Create(int seed, int[] blocks, string? source = null)
    {
        manual_seed(seed);
        var resnet = new ResNetVisionModel(new ResNetConfig
        {
            Architecture = "tiny", Blocks = blocks, Widths = [4, 8, 8, 16], ImageSize = 32,
            StemPadding = [3, 3, 2, 2], DownsamplePadding = [1, 1, 0, 0], PoolPadding = [1, 1, 0, 0], Source = source,
        });
        using (no_grad())
            foreach (var (name, t) in resnet.StateTensors())
                if (name.EndsWith("running_var")) t.fill_(1);
                else if (!name.EndsWith("running_mean")) t.normal_(0, 0.3);
        return resnet;
    }

    /// <summary>A tiny ResNet written as a backbone folder (config.json + model.safetensors) at <paramref name="directory"/>.</summary>
    public static string Save(string directory, int seed, int[] blocks, string? source = null)
    {
        using var resnet = Create(seed, blocks, source);
        resnet.SavePretrained(directory);
        return directory;
    }
}
