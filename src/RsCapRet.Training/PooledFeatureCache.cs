using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using RsCapRet.Model;
using RsCapRet.Model.Checkpoints;
using RsCapRet.Raster;
using RsCapRet.Training.Datasets;
using TorchSharp;
using static TorchSharp.torch;

namespace RsCapRet.Training;

/// <summary>
/// A frozen backbone's pooled vectors of a split, computed once and kept on disk: with the vision encoder frozen,
/// training the decoder and heads needs only these, and the backbone forward (the costly part on a CPU) runs once
/// per image and view instead of once per step. Views are the dihedral transforms of overhead imagery (view v:
/// v mod 4 quarter turns, mirrored when v ≥ 4), so augmentation survives the caching.
/// </summary>
public static class PooledFeatureCache
{
    /// <summary>[views, images, hidden] float32 pooled vectors, from the cache folder when present.</summary>
    public static Tensor Load(VisionBackbone vision, string backboneDirectory, IReadOnlyList<CaptionedImage> images, int views,
        string cacheDirectory, Action<string> log) =>
        Load("pooled", vision.Pooled, [vision.HiddenSize], ScalarType.Float32, vision, backboneDirectory, images, views, cacheDirectory, log);

    /// <summary>
    /// [views, images, ...shape] of any per-image encoding <paramref name="encode"/> (pixel values → [B, ...shape]),
    /// stored as <paramref name="storeAs"/> under a key that includes <paramref name="kind"/> — e.g. a ResNet's
    /// intermediate feature maps for a run that trains only the later blocks.
    /// </summary>
    public static Tensor Load(string kind, Func<Tensor, Tensor> encode, long[] shape, ScalarType storeAs, VisionBackbone vision,
        string backboneDirectory, IReadOnlyList<CaptionedImage> images, int views, string cacheDirectory, Action<string> log)
    {
        if (views is < 1 or > 8) throw new ArgumentOutOfRangeException(nameof(views), views, "feature views must be 1..8 (the dihedral transforms)");
        var pre = vision.Preprocessor();
        var key = Key(kind, backboneDirectory, pre.Size, views, images);
        var path = Path.Combine(cacheDirectory, $"{kind}-{key}.safetensors");
        long[] expected = [views, images.Count, .. shape];
        if (File.Exists(path))
        {
            using var ckpt = Checkpoint.Open(path);
            var cached = ckpt.Read("features", storeAs);
            if (cached.shape.SequenceEqual(expected))
            {
                log($"{kind} features: {images.Count} images × {views} views from {path}");
                return cached;
            }
            cached.Dispose();
        }
        var features = Compute(kind, encode, expected, storeAs, vision, images, pre, views, log);
        Directory.CreateDirectory(cacheDirectory);
        SafetensorsWriter.Write(path, [("features", features)], new Dictionary<string, string> { ["format"] = $"rscapret-{kind}-features", ["images"] = images.Count.ToString() });
        log($"{kind} features written to {path}");
        return features;
    }

    /// <summary>The dihedral view <paramref name="view"/> of pixel values [B, 3, H, W].</summary>
    public static Tensor View(Tensor pixels, int view)
    {
        var x = view >= 4 ? pixels.flip(3) : pixels;
        return view % 4 == 0 ? x.alias() : x.rot90(view % 4, (2, 3));
    }

    private static Tensor Compute(string kind, Func<Tensor, Tensor> encode, long[] shape, ScalarType storeAs, VisionBackbone vision,
        IReadOnlyList<CaptionedImage> images, ImagePreprocessor pre, int views, Action<string> log)
    {
        var features = empty(shape, storeAs);
        var device = vision.parameters().First().device;
        var sw = Stopwatch.StartNew();
        const int chunk = 16;   // the fastest batch in `bench encoder` (larger batches hit slower allocations)
        using var _ = no_grad();
        for (var s = 0; s < images.Count; s += chunk)
        {
            using var scope = NewDisposeScope();
            var n = Math.Min(chunk, images.Count - s);
            var pixels = empty(n, 3, pre.Size, pre.Size);
            Parallel.For(0, n, new ParallelOptions { MaxDegreeOfParallelism = 2 }, i =>
            {
                using var inner = NewDisposeScope();
                pixels[i].copy_(pre.Process(RasterImage.ReadRgb(images[s + i].ImagePath)));
            });
            for (var v = 0; v < views; v++)
                features[v].narrow(0, s, n).copy_(encode(View(pixels, v).to(device)).to_type(storeAs).cpu());
            if ((s / chunk) % 20 == 0 || s + n == images.Count)
                log(FormattableString.Invariant($"{kind} features: {s + n}/{images.Count} images × {views} views ({(s + n) * views / sw.Elapsed.TotalSeconds:F1} forwards/s)"));
        }
        return features;
    }

    /// <summary>What the vectors depend on: the backbone's weights, input size, views, and the images in order.</summary>
    private static string Key(string kind, string backboneDirectory, int size, int views, IReadOnlyList<CaptionedImage> images)
    {
        // "pooled" keys stay as they were before other kinds existed, so existing caches remain valid.
        var text = new StringBuilder(kind == "pooled" ? "" : kind + "|");
        using (var fs = File.OpenRead(Path.Combine(backboneDirectory, "model.safetensors")))
            text.Append(Convert.ToHexStringLower(SHA256.HashData(fs)));
        text.Append('|').Append(size).Append('|').Append(views);
        foreach (var im in images)
        {
            var info = new FileInfo(im.ImagePath);
            text.Append('|').Append(im.ImagePath).Append(':').Append(info.Exists ? info.Length : -1);
        }
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())))[..20];
    }
}
