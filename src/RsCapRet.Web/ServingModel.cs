using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using RsCapRet.Inference;
using RsCapRet.Model;
using RsCapRet.Storage;

namespace RsCapRet.Web;

/// <summary>
/// The model searches use is the activated one (`rscapret models activate`), but its recorded folder is not on this
/// machine: the host answers 503 naming the model (never the folder: paths are the server's business; the log has it).
/// </summary>
public sealed class ModelNotAvailableException(string message) : Exception(message);

/// <summary>One model as <see cref="ServingModel.UseAsync{T}"/> hands it out: encoder, catalogue id and folder, taken together.</summary>
public sealed record ServedModel(RsCapRetTileEncoder Encoder, int ModelId, string Directory);

/// <summary>
/// Which model folder the host embeds queries with. Pinned (serve --model, RSCAPRET_MODEL, or a caller that names its
/// folder): always that one. Following: the activated model's recorded folder, else the fallback (models/default),
/// re-read from the catalogue at most every <see cref="Refresh"/> — one small query per interval, shared by every
/// request — so `models activate` reaches a running host without a restart. Whoever embeds a query takes the folder
/// once and gets the vector and the model id from that one folder's model, so a switch never mixes the two.
/// The one place the host learns which model serves and its catalogue id: model work goes through
/// <see cref="UseAsync{T}"/>, text queries through the <see cref="QueryVectorBatcher"/> built on it.
/// </summary>
public sealed class ServingModel
{
    public static readonly TimeSpan DefaultRefresh = TimeSpan.FromSeconds(2);

    private sealed record Choice(string? Directory, ModelNotAvailableException? Error, long CheckedAt);

    private readonly CatalogStore _store;
    private readonly ILogger? _log;
    private readonly ConcurrentDictionary<ModelIdentity, int> _ids = new();
    private readonly object _gate = new();
    private volatile Choice? _choice;
    private Task<Choice>? _refreshing;

    public ServingModel(CatalogStore store, string fallbackDirectory, bool followActivated, TimeSpan? refresh = null, ILogger? log = null)
    {
        _store = store;
        FallbackDirectory = Path.GetFullPath(fallbackDirectory);
        FollowsActivated = followActivated;
        Refresh = refresh ?? DefaultRefresh;
        _log = log;
    }

    /// <summary>The folder used when no model is activated (or always, when pinned).</summary>
    public string FallbackDirectory { get; }
    /// <summary>False when the host is pinned to <see cref="FallbackDirectory"/>.</summary>
    public bool FollowsActivated { get; }
    /// <summary>How stale the activated model may be (and how long an activation takes to reach this host at most).</summary>
    public TimeSpan Refresh { get; }

    /// <summary>The folder to embed with now; <see cref="ModelNotAvailableException"/> when the activated one is missing here.</summary>
    public async ValueTask<string> DirectoryAsync(CancellationToken ct = default)
    {
        if (!FollowsActivated) return FallbackDirectory;
        var choice = _choice;
        if (choice is null || Stale(choice)) choice = await RefreshAsync().WaitAsync(ct);
        return choice.Directory ?? throw choice.Error!;
    }

    /// <summary>
    /// Runs <paramref name="work"/> on the model serving now: the folder is taken once, and the encoder loaded from it,
    /// its catalogue id and the folder itself (its relevance.json) reach the work together, so whatever the work makes
    /// and filters by belongs to one model even while an activation switches the host. The model is waited for with
    /// <paramref name="ct"/>: a caller that has gone never gets it.
    /// </summary>
    public async Task<T> UseAsync<T>(ModelCache models, Func<ServedModel, Task<T>> work, CancellationToken ct)
    {
        var directory = await DirectoryAsync(ct);
        return await models.WithModelAsync(directory, async encoder =>
        {
            ct.ThrowIfCancellationRequested();
            return await work(new ServedModel(encoder, await ModelIdAsync(encoder, ct), directory));
        }, ct);
    }

    /// <summary>The catalogue id of a loaded model (registered once per identity and process).</summary>
    public async Task<int> ModelIdAsync(RsCapRetTileEncoder encoder, CancellationToken ct = default)
    {
        if (_ids.TryGetValue(encoder.Identity, out var id)) return id;
        id = await _store.RegisterModelAsync(encoder.Identity, ct);
        _ids[encoder.Identity] = id;
        return id;
    }

    private bool Stale(Choice c) => Stopwatch.GetElapsedTime(c.CheckedAt) >= Refresh;

    /// <summary>One look-up at a time, whichever request finds the choice stale first; the others wait for it.</summary>
    private Task<Choice> RefreshAsync()
    {
        lock (_gate)
        {
            if (_choice is { } c && !Stale(c)) return Task.FromResult(c);
            if (_refreshing is null || _refreshing.IsCompleted) _refreshing = Task.Run(LookUpAsync);
            return _refreshing;
        }
    }

    private async Task<Choice> LookUpAsync()
    {
        Choice next;
        try
        {
            next = await ChooseAsync();
        }
        catch (Exception e) when (_choice is { } last && JsonErrors.IsDatabaseOutage(e))
        {
            // The catalogue is out of reach for a moment: keep serving what was chosen last (the search itself will say so).
            next = last with { CheckedAt = Stopwatch.GetTimestamp() };
        }
        var previous = _choice;
        _choice = next;
        if (previous is not null && previous.Directory != next.Directory && next.Directory is not null && _log?.IsEnabled(LogLevel.Information) == true)
            _log.LogInformation("searches now use the model in {Directory}", next.Directory);
        return next;
    }

    private async Task<Choice> ChooseAsync()
    {
        var now = Stopwatch.GetTimestamp();
        if (await _store.ActiveModelAsync() is not { } active) return new Choice(FallbackDirectory, null, now);
        if (active.Directory is { } dir && File.Exists(Path.Combine(dir, RsCapRetConfig.FileName))) return new Choice(Path.GetFullPath(dir), null, now);
        // Not here: name the model (its name and version from the catalogue), not the folder.
        string name = $"id {active.Id}";
        await using (var cmd = _store.ReadSource.CreateCommand("SELECT name, version FROM models WHERE id = $1"))
        {
            cmd.Parameters.Add(new() { Value = active.Id });
            await using var r = await cmd.ExecuteReaderAsync();
            if (await r.ReadAsync()) name = $"{r.GetString(0)}@{r.GetString(1)} (id {active.Id})";
        }
        if (_choice?.Error is null)
            _log?.LogError("the activated model {Model} cannot be served: its recorded folder {Directory} is not on this machine", name, active.Directory ?? "(none recorded)");
        return new Choice(null, new ModelNotAvailableException(
            $"the activated model {name} is not available on this server: its model folder is not here. Copy the folder to where it was " +
            "recorded, or activate another model (rscapret models activate)"), now);
    }
}
