using RsCapRet.Model;
using RsCapRet.Training;
using static TorchSharp.torch;

namespace RsCapRet.Training.Tests;

/// <summary>InfoNCE with identical captions in the batch counted as positives (UCM repeats captions within a class).</summary>
public sealed class DuplicateCaptionContrastiveTests
{
    [Fact]
    public void SameCaptionMarksIdenticalTextsAndTheDiagonal()
    {
        var same = RsCapRetTrainer.SameCaption([[5, 6, 7], [5, 6, 7], [5, 6], [8]]).data<float>().ToArray();
        Assert.Equal(new float[] { 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1 }, same);
    }

    [Fact]
    public void WithOnlyTheDiagonalItIsPlainInfoNce()
    {
        var logits = randn(5, 5, generator: new TorchSharp.torch.Generator(3));
        var plain = Losses.InfoNce(logits).item<float>();
        var withPositives = Losses.InfoNce(logits, eye(5)).item<float>();
        Assert.Equal(plain, withPositives, 5);
    }

    [Fact]
    public void DuplicatesShareTheTargetInsteadOfBeingNegatives()
    {
        // Texts 0 and 1 are the same caption; every image scores its own text 2, the others 0.
        var logits = tensor(new float[] { 2, 0, 0, 0, 2, 0, 0, 0, 2 }, [3, 3]);
        var positives = RsCapRetTrainer.SameCaption([[1, 2], [1, 2], [3]]);
        var z = Math.Log(Math.Exp(2) + 2);   // log-sum-exp of each row and column
        // Rows/columns 0 and 1: half the target on the own pair (log p = 2 - z), half on the duplicate (log p = -z).
        var duplicateTerm = -(0.5 * (2 - z) + 0.5 * -z);
        var expected = (2 * duplicateTerm + (z - 2)) / 3;   // same in both directions
        Assert.Equal(expected, Losses.InfoNce(logits, positives).item<float>(), 5);
        Assert.True(Losses.InfoNce(logits, positives).item<float>() > Losses.InfoNce(logits).item<float>());
    }

    [Fact]
    public void CaptionGroupsLinkImagesThroughSharedCaptionsTransitively()
    {
        // 0 and 1 share a caption (up to case, punctuation and spacing), 1 and 2 share another: one group.
        // 3 shares nothing; 4 repeats a caption of its own (no link to anyone else).
        string[][] captions =
        [
            ["There are many planes .", "An airport."],
            ["there are many  planes", "Planes parked near the terminal ."],
            ["planes parked near the terminal", "A runway."],
            ["A baseball field ."],
            ["Storage tanks .", "storage tanks"],
        ];
        var groups = RsCapRetTrainer.CaptionGroups(captions);
        Assert.Equal(groups[0], groups[1]);
        Assert.Equal(groups[1], groups[2]);
        Assert.Equal(3, groups.Distinct().Count());
        Assert.NotEqual(groups[0], groups[3]);
        Assert.NotEqual(groups[3], groups[4]);
        Assert.NotEqual(groups[0], groups[4]);
    }

    [Fact]
    public void SameGroupMarksBatchItemsOfOneGroup()
    {
        var same = RsCapRetTrainer.SameGroup([7, 3, 7, 9]).data<float>().ToArray();
        Assert.Equal(new float[] { 1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1 }, same);
    }
}
