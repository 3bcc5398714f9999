using System.Threading.Channels;
using RsCapRet.Inference;
using RsCapRet.Queries;

namespace RsCapRet.Web;

/// <summary>How text queries become vectors in the host: batching, queue and cache sizes.</summary>
public sealed record QueryVectorOptions
{
    /// <summary>The most queries in one forward pass (1: each alone).</summary>
    public int MaxBatch { get; init; } = 32;
    /// <summary>
    /// How long the first query of a batch waits for others to join it — only while queries come together (the last
    /// pass held more than one), so a lone query waits for nothing. bench/http-load.sh at 8 connections, with two torch
    /// threads per pass: 2.8x the requests/s of one pass per query with a 3 ms window, 1.8x with none; at 1 connection
    /// a window that always waited cost 2.6 ms of p50. With serve's one thread per pass the gain is 1.2-1.35x (docs/benchmarks.md).
    /// </summary>
    public TimeSpan Window { get; init; } = TimeSpan.FromMilliseconds(3);
    /// <summary>Queries waiting at most; beyond it a request is refused with 503 and Retry-After.</summary>
    public int QueueCapacity { get; init; } = 256;
    /// <summary>Recent query texts whose vectors are kept (0: no cache).</summary>
    public int CacheEntries { get; init; } = 4096;
    /// <summary>A query's tokens at most (<see cref="ModelWorkLimits.MaxPromptTokens"/>); a longer one is refused with <see cref="ModelWorkLimitException"/>.</summary>
    public ModelWorkLimits Limits { get; init; } = new();

    /// <summary>RSCAPRET_QUERY_BATCH, RSCAPRET_QUERY_BATCH_WINDOW_MS, RSCAPRET_QUERY_QUEUE, RSCAPRET_QUERY_CACHE (defaults above).</summary>
    public static QueryVectorOptions FromEnvironment()
    {
        var web = WebOptions.FromEnvironment();
        return new QueryVectorOptions
        {
            MaxBatch = Math.Max(1, web.QueryBatch),
            Window = TimeSpan.FromMilliseconds(web.QueryBatchWindowMs),
            QueueCapacity = Math.Max(1, web.QueryQueue),
            CacheEntries = web.QueryCache,
            Limits = ModelWorkLimits.FromEnvironment(),
        };
    }
}

/// <summary>A query text's vector, the catalogue id of the model that made it and that model's folder.</summary>
public sealed record QueryVector(int ModelId, float[] Vector, string Directory);

/// <summary>The queue of text queries is full: the caller should retry after <see cref="RetryAfterSeconds"/>.</summary>
public sealed class QueryQueueFullException(int retryAfterSeconds)
    : Exception($"the server is answering too many queries at once; retry in {retryAfterSeconds} s")
{
    public int RetryAfterSeconds { get; } = retryAfterSeconds;
}

/// <summary>
/// Text queries to [RET] vectors for the HTTP host. Concurrent requests wait in one bounded queue; a single loop takes
/// everything that has arrived (up to <see cref="QueryVectorOptions.MaxBatch"/>, waiting a short window for more
/// while queries come together) and embeds it in one forward pass of the serving model: queries that arrive while a pass runs go
/// together into the next, so under load 8 simultaneous queries cost about one pass instead of eight. Repeated texts
/// are answered from a bounded cache (least recently used out). A full queue refuses at once
/// (<see cref="QueryQueueFullException"/>: the host answers 503 with Retry-After) rather than letting latency grow
/// without bound. The serving model may change while the host runs (<see cref="ServingModel"/>): each query takes the
/// model folder once, its vector and model id both come from that folder's model, and the cache is keyed by folder
/// and text, so a vector of one model never searches another's tiles.
/// </summary>
public sealed class QueryVectorBatcher : IAsyncDisposable
{
    private sealed record Pending(string Directory, string Text, TaskCompletionSource<(int ModelId, float[] Vector)> Done, CancellationToken Cancelled);

    private readonly ModelCache _models;
    private readonly Func<CancellationToken, ValueTask<string>> _modelDirectory;
    private readonly Func<RsCapRetTileEncoder, Task<int>> _modelId;
    private readonly QueryVectorOptions _options;
    private readonly Channel<Pending> _queue;
    private readonly Dictionary<(string Directory, string Text), LinkedListNode<(string Directory, string Text, int ModelId, float[] Vector)>> _cache = new();
    private readonly LinkedList<(string Directory, string Text, int ModelId, float[] Vector)> _recent = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    /// <summary>Forward passes made and texts they embedded (for tests and the log).</summary>
    public long Batches => Interlocked.Read(ref _batches);
    public long Embedded => Interlocked.Read(ref _embedded);
    private long _batches, _embedded;

    /// <summary>Queries waiting in the queue, not yet taken by the batching loop (for tests).</summary>
    public int Queued => _queue.Reader.Count;

    /// <summary>The host's batcher: the folder and the model id from <paramref name="serving"/>, as every other use of the model.</summary>
    public QueryVectorBatcher(ModelCache models, ServingModel serving, QueryVectorOptions options)
        : this(models, serving.DirectoryAsync, encoder => serving.ModelIdAsync(encoder), options)
    {
    }

    /// <param name="modelId">the catalogue id of the serving model (registered once)</param>
    public QueryVectorBatcher(ModelCache models, string modelDirectory, Func<RsCapRetTileEncoder, Task<int>> modelId, QueryVectorOptions options)
        : this(models, _ => ValueTask.FromResult(modelDirectory), modelId, options)
    {
    }

    /// <param name="modelDirectory">the serving model's folder now, asked once per query: its cache key, and on a miss the model that embeds it</param>
    /// <param name="modelId">the catalogue id of a model (registered once per model)</param>
    public QueryVectorBatcher(ModelCache models, Func<CancellationToken, ValueTask<string>> modelDirectory, Func<RsCapRetTileEncoder, Task<int>> modelId,
        QueryVectorOptions options)
    {
        _models = models;
        _modelDirectory = modelDirectory;
        _modelId = modelId;
        _options = options;
        _queue = Channel.CreateBounded<Pending>(new BoundedChannelOptions(options.QueueCapacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        _loop = Task.Run(LoopAsync);
    }

    public async Task<(int ModelId, float[] Vector)> EmbedAsync(string text, CancellationToken ct)
    {
        var embedded = await EmbedWithModelAsync(text, ct);
        return (embedded.ModelId, embedded.Vector);
    }

    /// <summary>The text's vector with the model that made it: its catalogue id and its folder (for its relevance.json).</summary>
    public async Task<QueryVector> EmbedWithModelAsync(string text, CancellationToken ct)
    {
        text = text.Trim();
        if (text.Length == 0) throw new ArgumentException("The query text is empty.");
        var directory = await _modelDirectory(ct);
        if (_options.CacheEntries > 0)
            lock (_cache)
                if (_cache.TryGetValue((directory, text), out var node))
                {
                    _recent.Remove(node);
                    _recent.AddFirst(node);
                    return new QueryVector(node.Value.ModelId, node.Value.Vector, directory);
                }
        var pending = new Pending(directory, text, new TaskCompletionSource<(int, float[])>(TaskCreationOptions.RunContinuationsAsynchronously), ct);
        if (!_queue.Writer.TryWrite(pending)) throw new QueryQueueFullException(1);
        var (modelId, vector) = await pending.Done.Task.WaitAsync(ct);
        return new QueryVector(modelId, vector, directory);
    }

    private async Task LoopAsync()
    {
        var reader = _queue.Reader;
        var batch = new List<Pending>(_options.MaxBatch);
        var lastBatch = 0;
        try
        {
            while (await reader.WaitToReadAsync(_stop.Token))
            {
                // Wait for company only when queries have been coming together.
                var window = lastBatch > 1 ? _options.Window : TimeSpan.Zero;
                batch.Clear();
                var deadline = DateTime.UtcNow + window;
                while (batch.Count < _options.MaxBatch)
                {
                    if (reader.TryRead(out var p)) { batch.Add(p); continue; }
                    var left = deadline - DateTime.UtcNow;
                    if (batch.Count > 0 && left <= TimeSpan.Zero) break;
                    using var wait = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                    wait.CancelAfter(left > TimeSpan.Zero ? left : TimeSpan.Zero);
                    try { if (!await reader.WaitToReadAsync(wait.Token)) break; }
                    catch (OperationCanceledException) when (!_stop.IsCancellationRequested) { break; }
                }
                lastBatch = batch.Count;
                if (batch.Count > 0) await EmbedBatchAsync(batch);
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested) { }
        // Whatever still waits when the host stops is told so.
        while (reader.TryRead(out var left)) left.Done.TrySetCanceled();
        foreach (var p in batch) p.Done.TrySetCanceled();
    }

    private async Task EmbedBatchAsync(List<Pending> batch)
    {
        // Queries that came in across a switch of the serving model: one pass per model (normally a single group).
        foreach (var group in batch.GroupBy(p => p.Directory)) await EmbedBatchAsync(group.Key, group.ToList());
    }

    private async Task EmbedBatchAsync(string directory, List<Pending> batch)
    {
        // Queries whose clients have gone are not embedded.
        foreach (var p in batch.Where(p => p.Cancelled.IsCancellationRequested)) p.Done.TrySetCanceled(p.Cancelled);
        batch = batch.Where(p => !p.Cancelled.IsCancellationRequested).ToList();
        if (batch.Count == 0) return;
        // The same text twice in one batch is embedded once.
        var texts = batch.Select(p => p.Text).Distinct().ToList();
        try
        {
            var (modelId, vectors) = await _models.WithModelAsync(directory, async encoder =>
            {
                // A query over the token limit is refused on its own; the others of the batch go on.
                var refused = new HashSet<string>();
                foreach (var text in texts)
                {
                    try { _options.Limits.Tokenize(encoder.Tokenizer, [text], "query text"); }
                    catch (ModelWorkLimitException e)
                    {
                        refused.Add(text);
                        foreach (var p in batch.Where(p => p.Text == text)) p.Done.TrySetException(e);
                    }
                }
                if (refused.Count > 0)
                {
                    texts.RemoveAll(refused.Contains);
                    batch.RemoveAll(p => refused.Contains(p.Text));
                }
                return (await _modelId(encoder), texts.Count == 0 ? [] : encoder.EmbedTexts(texts));
            }, _stop.Token);
            if (texts.Count == 0) return;
            Interlocked.Increment(ref _batches);
            Interlocked.Add(ref _embedded, texts.Count);
            var byText = texts.Select((t, i) => (t, i)).ToDictionary(x => x.t, x => vectors[x.i]);
            if (_options.CacheEntries > 0)
                lock (_cache)
                    foreach (var (text, vector) in byText)
                    {
                        if (_cache.ContainsKey((directory, text))) continue;
                        _cache[(directory, text)] = _recent.AddFirst((directory, text, modelId, vector));
                        while (_cache.Count > _options.CacheEntries && _recent.Last is { } oldest)
                        {
                            _recent.RemoveLast();
                            _cache.Remove((oldest.Value.Directory, oldest.Value.Text));
                        }
                    }
            foreach (var p in batch) p.Done.TrySetResult((modelId, byText[p.Text]));
        }
        catch (Exception e)
        {
            foreach (var p in batch) p.Done.TrySetException(e);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        _stop.Cancel();
        try { await _loop; } catch (OperationCanceledException) { }
        _stop.Dispose();
    }
}
