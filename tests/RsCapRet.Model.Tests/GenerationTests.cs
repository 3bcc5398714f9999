using RsCapRet.Model.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace RsCapRet.Model.Tests;

public class GenerationTests
{
    private static string TinyA => Path.Combine(Fixtures.ParityRoot, "tiny-a");

    /// <summary>Greedy decoding recomputed from scratch each step (no cache), as a reference for the cached path.</summary>
    private static int[] NaiveGreedy(RsCapRetModel model, Tensor pixels, int steps)
    {
        var ids = new List<long> { model.BosTokenId };
        var prefix = model.VisualPrefix(model.PooledImage(pixels));
        for (var s = 0; s < steps; s++)
        {
            var embeds = cat([prefix, model.Llm.EmbedTokens(tensor(ids.ToArray()).unsqueeze(0))], 1);
            using var output = model.Llm.ForwardEmbeds(embeds);
            var logits = output.Logits.select(1, -1).squeeze(0);
            var next = logits.argmax().item<long>();
            if (next == model.EosTokenId || next == model.RetTokenId) break; // [RET] ends a caption

            ids.Add(next);
        }
        return ids.Skip(1).Select(i => (int)i).ToArray();
    }

    /// <summary>
    /// Beam search for one image with every hypothesis recomputed from scratch each step (no cache, no batching): the
    /// reference for the batched, cached beam search.
    /// </summary>
    private static int[] NaiveBeam(RsCapRetModel model, Tensor pixels, int k, int steps)
    {
        var prefix = model.VisualPrefix(model.PooledImage(pixels));
        var beams = new List<(List<long> Ids, double Score)> { (new List<long>(), 0.0) };
        var done = new List<(long[] Ids, double Score)>();
        for (var s = 0; s < steps && beams.Count > 0; s++)
        {
            var candidates = new List<(int Beam, long Token, double Score)>();
            for (var b = 0; b < beams.Count; b++)
            {
                var ids = new List<long> { model.BosTokenId };
                ids.AddRange(beams[b].Ids);
                var embeds = cat([prefix, model.Llm.EmbedTokens(tensor(ids.ToArray()).unsqueeze(0))], 1);
                using var output = model.Llm.ForwardEmbeds(embeds);
                var logp = nn.functional.log_softmax(output.Logits.select(1, -1).squeeze(0), -1);
                var (v, i) = logp.topk(k);
                for (var j = 0; j < k; j++) candidates.Add((b, i[j].item<long>(), beams[b].Score + v[j].item<float>()));
            }
            var next = new List<(List<long> Ids, double Score)>();
            foreach (var c in candidates.OrderByDescending(c => c.Score))
            {
                if (c.Token == model.EosTokenId || c.Token == model.RetTokenId) { done.Add((beams[c.Beam].Ids.ToArray(), c.Score / (beams[c.Beam].Ids.Count + 1))); continue; }
                next.Add((new List<long>(beams[c.Beam].Ids) { c.Token }, c.Score));
                if (next.Count == k) break;
            }
            if (done.Count >= k && next.Count > 0 && done.Max(d => d.Score) >= next.Max(n => n.Score / (n.Ids.Count + 1))) { beams.Clear(); break; }
            beams = next;
        }
        foreach (var (ids, score) in beams) done.Add((ids.ToArray(), score / Math.Max(1, ids.Count)));
        return done.OrderByDescending(d => d.Score).First().Ids.Select(i => (int)i).ToArray();
    }

    [Fact]
    public void BatchedBeamSearchEqualsRecomputedBeamSearchPerImage()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var expected = Checkpoint.Open(Path.Combine(TinyA, "expected.safetensors"));
        using var model = RsCapRetParityTests.LoadFixtureModel(TinyA, expected);
        var pixels = expected.Read("vision.pixel_values");
        foreach (var (k, steps) in new[] { (2, 12), (3, 12), (4, 6) })
        {
            var batched = model.GenerateCaptions(pixels, new GenerationOptions { MaxNewTokens = steps, BeamWidth = k });
            Assert.Equal((int)pixels.shape[0], batched.Count);
            for (var i = 0; i < batched.Count; i++)
                Assert.Equal(NaiveBeam(model, pixels.narrow(0, i, 1), k, steps), batched[i]);
            // The same images one at a time: an image's result does not depend on the others in its batch.
            for (var i = 0; i < batched.Count; i++)
                Assert.Equal(model.GenerateCaptions(pixels.narrow(0, i, 1), new GenerationOptions { MaxNewTokens = steps, BeamWidth = k })[0], batched[i]);
        }
    }

    [Fact]
    public void CachedGreedyEqualsRecomputedGreedyAndBeamOfOneEqualsGreedy()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var expected = Checkpoint.Open(Path.Combine(TinyA, "expected.safetensors"));
        using var model = RsCapRetParityTests.LoadFixtureModel(TinyA, expected);
        var pixels = expected.Read("vision.pixel_values");
        var greedy = model.GenerateCaptions(pixels, new GenerationOptions { MaxNewTokens = 12 });
        Assert.Equal(3, greedy.Count);
        for (var i = 0; i < 3; i++)
        {
            var naive = NaiveGreedy(model, pixels.narrow(0, i, 1), 12);
            Assert.Equal(naive, greedy[i]);
            Assert.DoesNotContain(model.RetTokenId, greedy[i]);
        }
        var beam1 = model.GenerateCaptions(pixels, new GenerationOptions { MaxNewTokens = 12, BeamWidth = 1 });
        Assert.Equal(greedy, beam1);
        var beam3 = model.GenerateCaptions(pixels, new GenerationOptions { MaxNewTokens = 12, BeamWidth = 3 });
        Assert.Equal(3, beam3.Count);
        Assert.All(beam3, ids => Assert.DoesNotContain(model.RetTokenId, ids));
    }

    [Fact]
    public void BatchedRetEmbeddingWithPaddingEqualsSingleRows()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var expected = Checkpoint.Open(Path.Combine(TinyA, "expected.safetensors"));
        using var model = RsCapRetParityTests.LoadFixtureModel(TinyA, expected);
        var ids = expected.Read("rscapret.caption_ids");
        var single = model.RetEmbedding(ids.narrow(0, 0, 1).narrow(1, 0, 6));
        // Right-pad the row with zeros and mask them out: the [RET] vector must not change.
        var padded = cat([ids.narrow(0, 0, 1), zeros(1, 3, ScalarType.Int64)], 1);
        var mask = cat([ones(1, 6, ScalarType.Int64), zeros(1, 3, ScalarType.Int64)], 1);
        Fixtures.AssertClose(model.RetEmbedding(padded, mask), single, "padded [RET] embedding", 1e-5);
        Assert.Throws<ArgumentException>(() => model.RetEmbedding(ids.narrow(1, 0, 4))); // no [RET] in the rows
    }

    [Fact]
    public void HiddenStateAtOneRowEqualsTheFullForwardThere()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var expected = Checkpoint.Open(Path.Combine(TinyA, "expected.safetensors"));
        using var model = RsCapRetParityTests.LoadFixtureModel(TinyA, expected);
        // Three rows, right-padded to different lengths, each read at a different position (one of them padding's edge).
        var ids = cat([expected.Read("rscapret.caption_ids").narrow(0, 0, 1).narrow(1, 0, 6).repeat(3, 1), zeros(3, 2, ScalarType.Int64)], 1);
        var mask = tensor(new long[,] { { 1, 1, 1, 1, 1, 1, 1, 1 }, { 1, 1, 1, 1, 0, 0, 0, 0 }, { 1, 1, 1, 1, 1, 1, 0, 0 } });
        var rows = tensor(new long[] { 7, 3, 5 });
        using var full = model.Llm.Forward(ids, mask);
        var reference = full.LastHiddenState[arange(3), rows];
        Fixtures.AssertClose(model.Llm.HiddenAt(ids, rows, mask), reference, "hidden state at one row per sequence", 1e-5);
        using var unmasked = model.Llm.Forward(ids);
        Fixtures.AssertClose(model.Llm.HiddenAt(ids, rows), unmasked.LastHiddenState[arange(3), rows], "hidden state at one row, no mask", 1e-5);
    }

    [Fact]
    public void InterleavedPromptEmbedsImagesAsPrefixTokens()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var expected = Checkpoint.Open(Path.Combine(TinyA, "expected.safetensors"));
        using var model = RsCapRetParityTests.LoadFixtureModel(TinyA, expected);
        var pixels = expected.Read("vision.pixel_values");
        var prompt = new PromptSegment[] { new ImageSegment(pixels[0]), new TextSegment([1, 31, 258]), new ImageSegment(pixels[1]), new TextSegment([51]) };
        var embeds = model.EmbedPrompt(prompt);
        Assert.Equal(new long[] { 1, 1 + 3 + 1 + 1, 64 }, embeds.shape);
        var reply = model.Continue(prompt, maxNewTokens: 5);
        Assert.InRange(reply.TokenIds.Length, 0, 5);
        if (reply.TokenIds.Length > 0 && reply.TokenIds[^1] == model.RetTokenId) Assert.Equal(16, reply.RetrievalVector!.Length);
        else Assert.Null(reply.RetrievalVector);
    }

    [Fact]
    public void RepeatedInferenceKeepsTensorCountFlat()
    {
        using var expected = Checkpoint.Open(Path.Combine(TinyA, "expected.safetensors"));
        using var model = RsCapRetParityTests.LoadFixtureModel(TinyA, expected);
        using var pixels = expected.Read("vision.pixel_values");
        void Once()
        {
            using var _ = no_grad();
            model.GenerateCaptions(pixels, new GenerationOptions { MaxNewTokens = 4 });
            using var e = model.ImageEmbedding(pixels);
        }
        Once();
        var before = TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (var i = 0; i < 50; i++) Once();
        var after = TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        Assert.True(after - before <= 0, $"{after - before} tensors leaked over 50 calls");
    }
}

public class Bf16InferenceTests
{
    [Fact]
    public void Bf16ModelEmbedsAndCaptionsCloseToFloat32()
    {
        var tinyA = Path.Combine(Fixtures.ParityRoot, "tiny-a");
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var expected = Checkpoint.Open(Path.Combine(tinyA, "expected.safetensors"));
        using var model = RsCapRetParityTests.LoadFixtureModel(tinyA, expected);
        var pixels = expected.Read("vision.pixel_values");
        var ids = expected.Read("rscapret.caption_ids");
        var img32 = model.ImageEmbedding(pixels);
        var ret32 = model.RetEmbedding(ids);
        model.to(ScalarType.BFloat16);
        var img16 = model.ImageEmbedding(pixels);
        var ret16 = model.RetEmbedding(ids);
        Assert.Equal(ScalarType.Float32, img16.dtype);   // vectors leave the model as float32 for storage
        Fixtures.AssertClose(img16, img32, "bf16 image embedding", 0.05);
        Fixtures.AssertClose(ret16, ret32, "bf16 [RET] embedding", 0.05);
        Assert.Equal(3, model.GenerateCaptions(pixels, new GenerationOptions { MaxNewTokens = 4 }).Count);
    }
}
