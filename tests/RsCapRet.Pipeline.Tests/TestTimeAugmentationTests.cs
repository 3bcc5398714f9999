using RsCapRet.Core;
using RsCapRet.Inference;
using RsCapRet.Model;
using RsCapRet.Raster;
using static TorchSharp.torch;

namespace RsCapRet.Pipeline.Tests;

/// <summary>
/// Issue 31, test-time augmentation: the TTA image vector is the normalised mean of the views' own vectors, each view
/// a dihedral transform of the image; one view is the plain image vector.
/// </summary>
public sealed class TestTimeAugmentationTests
{
    private static readonly string[] TwoUcmImages = ["1.jpg", "905.jpg"];

    [Fact]
    public void TheTtaVectorIsTheMeanOfTheDihedralViewsVectors()
    {
        using var encoder = RsCapRetTileEncoder.Load(Path.Combine(RepositoryPaths.FindRoot(), "models", "default"), "cpu");
        var images = TwoUcmImages
            .Select(f => RasterImage.ReadRgb(Path.Combine(RepositoryPaths.SharedDirectory(), "data", "ucm-captions", "images", f))).ToList();
        using var _ = no_grad();
        var model = encoder.Model;
        var pixels = encoder.Preprocessor.Process(images);
        Assert.True((model.ImageEmbeddingViews(pixels, 1) - model.ImageEmbedding(pixels)).abs().max().item<float>() <= 1e-6);
        foreach (var views in new[] { 4, 8 })
        {
            // Each view by hand: rotate and mirror the image itself, one pass each, and average the unit vectors.
            var sum = zeros(pixels.shape[0], model.SharedDim);
            for (var v = 0; v < views; v++)
            {
                var x = v >= 4 ? pixels.flip(3) : pixels;
                for (var turn = 0; turn < v % 4; turn++) x = x.rot90(1, (2, 3));
                sum += model.ImageEmbedding(x);
            }
            var expected = nn.functional.normalize(sum / views, dim: -1);
            var worst = (model.ImageEmbeddingViews(pixels, views) - expected).abs().max().item<float>();
            Assert.True(worst <= 1e-5, $"{views} views: the TTA vector differs from the mean of the views' by {worst}");
        }
        // The views are different pictures: a quarter turn moves the vector (else TTA would be a no-op to test).
        var turned = model.ImageEmbedding(RsCapRetModel.DihedralView(pixels, 1));
        Assert.True((turned - model.ImageEmbedding(pixels)).abs().max().item<float>() > 1e-3);
        Assert.Throws<ArgumentOutOfRangeException>(() => model.ImageEmbeddingViews(pixels, 9));
    }
}
