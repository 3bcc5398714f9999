using RsCapRet.Model;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace RsCapRet.Training;

/// <summary>The training losses of the contrastive objectives.</summary>
public static class Losses
{
    /// <summary>InfoNCE: the mean of image->text and text->image cross-entropies with matching pairs on the diagonal.</summary>
    public static Tensor InfoNce(Tensor logitsPerImage, Tensor? positives = null)
    {
        using var scope = NewDisposeScope();
        Tensor loss;
        if (positives is null)
        {
            var labels = arange(logitsPerImage.shape[0], device: logitsPerImage.device);
            loss = (F.cross_entropy(logitsPerImage, labels) + F.cross_entropy(logitsPerImage.t(), labels)) / Scalars.Of(2.0);
        }
        else
        {
            // Several positives per row (e.g. texts that are the same caption): the target spreads evenly over them.
            var target = positives.to_type(logitsPerImage.dtype).to(logitsPerImage.device);
            Tensor Direction(Tensor logits, Tensor t) => -(t / t.sum(1, keepdim: true) * F.log_softmax(logits, 1)).sum(1).mean();
            loss = (Direction(logitsPerImage, target) + Direction(logitsPerImage.t(), target.t())) / Scalars.Of(2.0);
        }
        return loss.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Text->image cross-entropy of query rows against a batch's images [queries, images], each row's target spread
    /// evenly over its positive images (one direction only: a dialogue's [RET] asks for images, no image asks back).
    /// </summary>
    public static Tensor SoftTargetTextToImage(Tensor logits, IReadOnlyList<IReadOnlySet<int>> positives)
    {
        var images = (int)logits.shape[1];
        var target = new float[positives.Count * images];
        for (var r = 0; r < positives.Count; r++)
            foreach (var j in positives[r]) target[r * images + j] = 1f / positives[r].Count;
        return -(tensor(target, [positives.Count, images]).to(logits.device) * F.log_softmax(logits, 1)).sum(1).mean();
    }
}
