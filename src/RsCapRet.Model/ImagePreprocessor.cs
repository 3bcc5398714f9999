using RsCapRet.Core;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace RsCapRet.Model;

/// <summary>
/// CLIP image preprocessing: resize the shortest side to <see cref="Size"/> (bicubic, antialiased), centre crop
/// to Size x Size, scale to [0,1] and normalise with the CLIP mean/std.
/// </summary>
public sealed record ImagePreprocessor(int Size = 224)
{
    public static readonly float[] ClipMean = [0.48145466f, 0.4578275f, 0.40821073f];
    public static readonly float[] ClipStd = [0.26862954f, 0.26130258f, 0.27577711f];

    public float[] Mean { get; init; } = ClipMean;
    public float[] Std { get; init; } = ClipStd;

    /// <summary>One image as a [3, Size, Size] float tensor.</summary>
    public Tensor Process(RgbImage image)
    {
        if (image.Width <= 0 || image.Height <= 0) throw new ArgumentException("The image is empty.", nameof(image));
        using var scope = NewDisposeScope();
        var x = tensor(image.Pixels, [image.Height, image.Width, 3], ScalarType.Byte).permute(2, 0, 1).to_type(ScalarType.Float32).div(Scalars.Of(255.0)).unsqueeze(0);
        if (image.Width != Size || image.Height != Size)
        {
            var scale = (double)Size / Math.Min(image.Width, image.Height);
            long h = Math.Max(Size, (long)Math.Round(image.Height * scale)), w = Math.Max(Size, (long)Math.Round(image.Width * scale));
            x = F.interpolate(x, [h, w], mode: InterpolationMode.Bicubic, align_corners: false, antialias: true).clamp(Scalars.Of(0.0), Scalars.Of(1.0));
            long top = (h - Size) / 2, left = (w - Size) / 2;
            x = x.narrow(2, top, Size).narrow(3, left, Size);
        }
        var mean = tensor(Mean).view(1, 3, 1, 1);
        var std = tensor(Std).view(1, 3, 1, 1);
        return ((x - mean) / std).squeeze(0).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>A batch [B, 3, Size, Size].</summary>
    public Tensor Process(IReadOnlyList<RgbImage> images)
    {
        using var scope = NewDisposeScope();
        return stack(images.Select(Process).ToArray()).MoveToOuterDisposeScope();
    }
}
