using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using RsCapRet.Cli;
using RsCapRet.Inference;
using RsCapRet.Jobs;
using RsCapRet.Pipeline;
using RsCapRet.Queries;
using RsCapRet.Storage;
using RsCapRet.TestSupport;
using RsCapRet.Web;

namespace RsCapRet.Web.Tests;

/// <summary>
/// Bounded work per request (hardening round two, item 1): the land-use request of the report (254 labels, a template
/// of 100 × {label}) is refused before any forward pass; labels, tokens per prompt and tokens per request have
/// limits; requests that run the model queue up to a bound and get 503 with Retry-After beyond it; a client that
/// hangs up while its request waits for the model leaves the queue without the work being done; prompts go through the
/// model a few at a time, cancellation checked between passes.
/// </summary>
public sealed class RequestBoundsTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-bounds-");
    public void Dispose() => _dir.Delete(true);

    private async Task<(WebApplication App, HttpClient Http, long Scene, string Model)> StartAsync(HostLimits? limits = null)
    {
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));
        long scene;
        using (var encoder = RsCapRetTileEncoder.Load(model, "cpu"))
            scene = (await new SceneIngestor(new CatalogStore(db.DataSource), encoder)
                .IngestAsync(TestScenes.SmallScene(_dir.FullName, $"bounds-{Guid.NewGuid():N}.tif", 300), new IngestOptions { Caption = false })).SceneId!.Value;
        var baseUrl = $"http://127.0.0.1:{LoopbackPorts.Free()}";
        var app = RsCapRetWebHost.Build(db.ConnectionString, baseUrl, model, jobs: WebHostJobs.Dashboard, limits: limits);
        await app.StartAsync();
        return (app, new HttpClient { BaseAddress = new Uri(baseUrl), Timeout = TimeSpan.FromSeconds(60) }, scene, model);
    }

    private static async Task<(HttpStatusCode Status, string Body, TimeSpan Took)> Get(HttpClient http, string url)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var response = await http.GetAsync(url);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(), sw.Elapsed);
    }

    [Fact]
    public async Task TheLandUseAttackOfTheReportAndOtherOverLimitPromptsAreRefusedBeforeAnyForwardPass()
    {
        var (app, http, scene, model) = await StartAsync();
        try
        {
            var limits = new ModelWorkLimits();
            // The report's request: 254 labels, template {label} x 100 (a 2.3 KB URL): refused at once, not 23 GB later.
            var labels254 = string.Join(",", Enumerable.Range(0, 254).Select(i => $"l{i}"));
            var template = string.Concat(Enumerable.Repeat("{label}", 100));
            var attack = await Get(http, $"/api/scenes/{scene}/classes?labels={labels254}&template={Uri.EscapeDataString(template)}");
            Assert.True(attack.Status == HttpStatusCode.BadRequest, $"{attack.Status} {attack.Body}");
            Assert.Contains($"at most {limits.MaxPrompts} labels, got 254", attack.Body);
            Assert.True(attack.Took < TimeSpan.FromSeconds(10), $"took {attack.Took}");

            // Few labels, but each prompt far over the token limit after the template is applied.
            var longPrompts = await Get(http, $"/api/scenes/{scene}/classes?labels=forest,river&template={Uri.EscapeDataString(template)}");
            Assert.True(longPrompts.Status == HttpStatusCode.BadRequest, $"{longPrompts.Status} {longPrompts.Body}");
            Assert.Contains($"at most {limits.MaxPromptTokens} tokens are allowed", longPrompts.Body);
            Assert.Contains(ModelWorkLimits.MaxPromptTokensVariable, longPrompts.Body);

            // Each prompt within its limit, all of them together over the request's: the template repeats the label as
            // often as the model's tokenizer allows under the per-prompt limit.
            var tokenizer = Model.Tokenizers.LlamaTextTokenizer.Load(Path.Combine(model, "tokenizer.model"));
            var labels64 = Enumerable.Range(0, 64).Select(i => $"farmland {i}").ToList();
            int Tokens(string tmpl) => labels64.Max(l => tokenizer.EncodeForRetrieval(tmpl.Replace("{label}", l)).Count);
            var repeat = 1;
            while (Tokens(string.Join(" ", Enumerable.Repeat("{label}", repeat + 1))) <= limits.MaxPromptTokens) repeat++;
            var words = string.Join(" ", Enumerable.Repeat("{label}", repeat));
            Assert.True(labels64.Sum(l => tokenizer.EncodeForRetrieval(words.Replace("{label}", l)).Count) > limits.MaxRequestTokens);
            var many = string.Join(",", labels64);
            var total = await Get(http, $"/api/scenes/{scene}/classes?labels={Uri.EscapeDataString(many)}&template={Uri.EscapeDataString(words)}");
            Assert.True(total.Status == HttpStatusCode.BadRequest, $"{total.Status} {total.Body}");
            Assert.Contains($"more than {limits.MaxRequestTokens} tokens together", total.Body);

            // A text query over the token limit (a changes "toward" text and a search): 400 naming the limit.
            var longText = string.Join(" ", Enumerable.Range(0, 120).Select(i => $"word{i}"));
            Assert.True(longText.Length is > 500 and < 1000);   // under the 1000 characters a query may have
            var search = await Get(http, $"/api/search?q={Uri.EscapeDataString(longText)}");
            Assert.True(search.Status == HttpStatusCode.BadRequest, $"{search.Status} {search.Body}");
            Assert.Contains("tokens are allowed", search.Body);
            var toward = await Get(http, $"/api/changes?before={scene}&after={scene}&toward={Uri.EscapeDataString(longText)}");
            Assert.True(toward.Status == HttpStatusCode.BadRequest, $"{toward.Status} {toward.Body}");

            // Within every limit: answered as before.
            var ok = await Get(http, $"/api/scenes/{scene}/classes?labels=forest,river,farmland&template={Uri.EscapeDataString("an aerial image of {label}")}");
            Assert.True(ok.Status == HttpStatusCode.OK, $"{ok.Status} {ok.Body}");
            Assert.Equal(HttpStatusCode.OK, (await Get(http, "/api/search?q=farm&k=2")).Status);
        }
        finally { await app.StopAsync(); }
    }

    [Fact]
    public async Task RequestsThatRunTheModelQueueUpToABoundAndAClientThatHangsUpLeavesTheQueue()
    {
        var (app, http, scene, model) = await StartAsync(new HostLimits { ModelQueue = 1, BusyRetryAfterSeconds = 3 });
        var models = app.Services.GetRequiredService<ModelCache>();
        var gate = GateOf(app);
        var held = new TaskCompletionSource();
        var holding = new TaskCompletionSource();
        // Something else is using the model (an ingest job of the host's worker, a long request).
        var holder = models.WithModelAsync(model, async _ => { holding.SetResult(); await held.Task; return 0; }, CancellationToken.None);
        await holding.Task;
        try
        {
            // The first land-use request waits for the model; the client gives up after a while.
            using var hangUp = new CancellationTokenSource();
            var waiting = http.GetAsync($"/api/scenes/{scene}/classes?labels=forest,river", hangUp.Token);
            await WaitUntil(() => gate.InFlight == 1, "the first request never reached the model queue");

            // The queue is full: the next request that needs the model is refused at once, with Retry-After.
            var busy = await http.GetAsync($"/api/scenes/{scene}/classes?labels=forest,river");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, busy.StatusCode);
            Assert.Equal(TimeSpan.FromSeconds(3), busy.Headers.RetryAfter?.Delta);
            Assert.Contains("retry in 3 s", await busy.Content.ReadAsStringAsync());
            var image = await http.PostAsync("/api/search/image", new ByteArrayContent(await File.ReadAllBytesAsync(TestImages.Png(Path.Combine(_dir.FullName, "q.png")))));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, image.StatusCode);

            // The client hangs up: its request leaves the queue without ever getting the model.
            await hangUp.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
            await WaitUntil(() => gate.InFlight == 0, "the abandoned request stayed in the model queue");
            Assert.Equal(0, gate.Started);
        }
        finally
        {
            held.SetResult();
            await holder;
        }
        try
        {
            // The model free again: requests are answered.
            var ok = await http.GetAsync($"/api/scenes/{scene}/classes?labels=forest,river");
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            Assert.Equal(1, gate.Started);
        }
        finally { await app.StopAsync(); }
    }

    [Fact]
    public void PromptsGoThroughTheModelAFewAtATimeAndCancellationStopsTheWorkBetweenPasses()
    {
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model-unit"));
        using var encoder = RsCapRetTileEncoder.Load(model, "cpu");
        var prompts = LandUseQuery.DefaultLabels.Select(l => $"an aerial image of {l}").ToList();
        var limits = new ModelWorkLimits { PromptsPerPass = 16, MaxPrompts = 64 };
        var chunked = limits.EmbedTexts(encoder, prompts, CancellationToken.None);
        var whole = encoder.EmbedTexts(prompts);
        Assert.Equal(prompts.Count, chunked.Count);
        for (var i = 0; i < prompts.Count; i++)
            Assert.True(TileCells.Dot(chunked[i], whole[i]) > 0.9999, $"prompt {i}: chunked and whole passes differ");

        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.Throws<OperationCanceledException>(() => limits.EmbedTexts(encoder, prompts, cancelled.Token));
        // The command line's limits: the map's 254 labels, the same per-prompt token limit.
        var cli = ModelWorkLimits.CommandLine();
        Assert.Equal(LandUseQuery.MaxLabels, cli.MaxPrompts);
        var e = Assert.Throws<ModelWorkLimitException>(() => cli.EmbedTexts(encoder, [string.Join(" ", Enumerable.Repeat("a farm", 200))], CancellationToken.None));
        Assert.Contains("tokens are allowed", e.Message);
    }

    private static ModelWorkGate GateOf(WebApplication app) => RsCapRetWebHost.ContextOf(app).ModelWork;

    private static async Task WaitUntil(Func<bool> condition, string message)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException(message);
            await Task.Delay(20);
        }
    }
}
