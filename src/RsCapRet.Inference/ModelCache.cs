using System.Collections.Concurrent;

namespace RsCapRet.Inference;

/// <summary>
/// Loaded models, one per folder per worker process: loading a model is costly, jobs are many. The device is
/// <paramref name="device"/> when given (the demo's --device), else RSCAPRET_DEVICE (default auto: CUDA on GPU workers).
/// The chat adapter is <paramref name="chatAdapter"/> when given (serve --chat-adapter), else RSCAPRET_CHAT_ADAPTER; a
/// model it was not trained on keeps its own chat (<see cref="RsCapRetTileEncoder.ChatAdapterSkipped"/> says so).
/// </summary>
public sealed class ModelCache(string? device = null, string? chatAdapter = null) : IDisposable
{
    private readonly ConcurrentDictionary<string, Lazy<RsCapRetTileEncoder>> _models = new();
    private readonly SemaphoreSlim _inference = new(1, 1);
    private static Model.ModelOptions Options => Core.Configuration.EnvironmentSettings.Load<Model.ModelOptions>();
    private readonly string _device = device ?? Options.Device;
    private readonly string? _chatAdapter = chatAdapter ?? Options.ChatAdapterDirectory;

    public RsCapRetTileEncoder Get(string modelDirectory) =>
        _models.GetOrAdd(Path.GetFullPath(modelDirectory), dir => new Lazy<RsCapRetTileEncoder>(() =>
            RsCapRetTileEncoder.Load(dir, _device, chatAdapter: _chatAdapter, skipUnfittingChatAdapter: true))).Value;

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
