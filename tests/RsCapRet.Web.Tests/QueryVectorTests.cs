using RsCapRet.Inference;
using RsCapRet.Jobs;
using RsCapRet.TestSupport;
using RsCapRet.Web;

namespace RsCapRet.Web.Tests;

/// <summary>The host's text-query batcher on the tiny model: batched vectors equal single ones, repeats hit the cache, a full queue refuses.</summary>
public sealed class QueryVectorTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-queries-");
    public void Dispose() => _dir.Delete(true);

    private static void AssertClose(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++) Assert.True(Math.Abs(expected[i] - actual[i]) < 1e-5, $"component {i}: {expected[i]} vs {actual[i]}");
    }

    [Fact]
    public async Task ConcurrentQueriesShareForwardPassesAndEqualTheirSingleVectors()
    {
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));
        using var models = new ModelCache("cpu");
        var texts = new[] { "a farm", "a river with trees on both sides", "storage tanks", "a dense residential area next to a river",
                            "a baseball field", "an airport with airplanes", "a beach", "many buildings" };
        var single = texts.Select(t => models.Get(model).EmbedText(t)).ToList();
        // The batched pass pads shorter texts: each row equals its text alone.
        var batched = models.Get(model).EmbedTexts(texts);
        for (var i = 0; i < texts.Length; i++) AssertClose(single[i], batched[i]);

        await using var batcher = new QueryVectorBatcher(models, model, _ => Task.FromResult(7),
            new QueryVectorOptions { MaxBatch = 32, Window = TimeSpan.FromMilliseconds(50), CacheEntries = 100 });
        var answers = await Task.WhenAll(texts.Select(t => batcher.EmbedAsync(t, CancellationToken.None)));
        for (var i = 0; i < texts.Length; i++)
        {
            Assert.Equal(7, answers[i].ModelId);
            AssertClose(single[i], answers[i].Vector);
        }
        Assert.Equal(texts.Length, batcher.Embedded);
        Assert.True(batcher.Batches < texts.Length, $"{batcher.Batches} forward passes for {texts.Length} concurrent queries");

        // Repeated texts (with other white space) come from the cache: no new forward pass.
        var passes = batcher.Batches;
        var again = await batcher.EmbedAsync("  a farm ", CancellationToken.None);
        AssertClose(single[0], again.Vector);
        Assert.Equal(passes, batcher.Batches);
        await Assert.ThrowsAsync<ArgumentException>(() => batcher.EmbedAsync("   ", CancellationToken.None));
    }

    [Fact]
    public async Task AFullQueueRefusesAtOnceAndServesAgainWhenTheModelIsFree()
    {
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));
        using var models = new ModelCache("cpu");
        models.Get(model);
        await using var batcher = new QueryVectorBatcher(models, model, _ => Task.FromResult(1),
            new QueryVectorOptions { MaxBatch = 1, Window = TimeSpan.Zero, QueueCapacity = 1, CacheEntries = 0 });
        // Hold the model (as an ingest job would): the first query waits for it, the second waits in the queue.
        var release = new TaskCompletionSource();
        var holding = models.WithModelAsync(model, async _ => { await release.Task; return 0; }, CancellationToken.None);
        var first = batcher.EmbedAsync("a farm", CancellationToken.None);
        // Until the loop has taken the first query and waits for the model.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (batcher.Queued > 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "the batching loop never took the first query");
            await Task.Delay(20);
        }
        var second = batcher.EmbedAsync("a river", CancellationToken.None);
        var full = await Assert.ThrowsAsync<QueryQueueFullException>(() => batcher.EmbedAsync("a beach", CancellationToken.None));
        Assert.Equal(1, full.RetryAfterSeconds);
        Assert.Contains("retry in 1 s", full.Message);
        release.SetResult();
        await holding;
        Assert.Equal(256, (await first).Vector.Length);
        Assert.Equal(256, (await second).Vector.Length);
        Assert.Equal(256, (await batcher.EmbedAsync("a beach", CancellationToken.None)).Vector.Length);   // served again
    }
}
