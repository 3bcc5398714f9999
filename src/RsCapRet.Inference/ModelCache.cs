using System.Collections.Concurrent;

namespace RsCapRet.Inference;

/// <summary>
/// Loaded models, one per folder per worker process: loading a model is costly, jobs are many. The device is
/// <paramref name="device"/> when given (the demo's --device), else RSCAPRET_DEVICE (default auto: CUDA on GPU workers).
/// </summary>
public sealed class ModelCache(string? device = null) : IDisposable
{
    private readonly ConcurrentDictionary<string, Lazy<RsCapRetTileEncoder>> _models = new();
    private readonly SemaphoreSlim _inference = new(1, 1);
    private readonly string _device = device ?? Core.Configuration.EnvironmentSettings.Load<Model.ModelOptions>().Device;

    public RsCapRetTileEncoder Get(string modelDirectory) =>
        _models.GetOrAdd(Path.GetFullPath(modelDirectory), dir => new Lazy<RsCapRetTileEncoder>(() => RsCapRetTileEncoder.Load(dir, _device))).Value;

    /// <summary>A model is not thread-safe; jobs of one process take turns on it (torch uses every core anyway).</summary>
    public async Task<T> WithModelAsync<T>(string modelDirectory, Func<RsCapRetTileEncoder, Task<T>> work, CancellationToken ct)
    {
        await _inference.WaitAsync(ct);
        try { return await work(Get(modelDirectory)); }
        finally { _inference.Release(); }
    }

    public void Dispose()
    {
        foreach (var m in _models.Values.Where(m => m.IsValueCreated)) m.Value.Dispose();
        _inference.Dispose();
    }
}
