using Npgsql;
using RsCapRet.Storage;

namespace RsCapRet.Pipeline;

/// <summary>
/// Holds a claimed scene for one ingestion run. It renews the lease every third of the lease (10 s at most) on a timer, besides the
/// per-batch renewals, so a slow batch does not lose the scene; it cancels the work (<see cref="Token"/>) when the
/// claim turns out to be taken over; and it releases the claim as soon as the run is cancelled (Ctrl-C, SIGTERM, a
/// job stopped), recording why, so the next run takes the scene at once instead of waiting out the lease.
/// </summary>
internal sealed class SceneClaimKeeper : IAsyncDisposable
{
    // A database restart takes seconds: retry recording the release that long before leaving it to the lease.
    private static readonly TimeSpan[] ReleaseRetryDelays = [.. new[] { 0.25, 0.5, 1, 2, 4, 8 }.Select(TimeSpan.FromSeconds)];

    private readonly CatalogStore _store;
    private readonly SceneClaim _claim;
    private readonly Func<string> _cancelReason;
    private readonly CancellationToken _run;
    private readonly CancellationTokenSource _work;
    private readonly Task _renewals;
    private readonly Lock _releaseLock = new();
    private Task<bool?>? _release;

    public SceneClaimKeeper(CatalogStore store, SceneClaim claim, Func<string> cancelReason, CancellationToken run)
    {
        (_store, _claim, _cancelReason, _run) = (store, claim, cancelReason, run);
        _work = CancellationTokenSource.CreateLinkedTokenSource(run);
        _renewals = Task.Run(RenewUntilStoppedAsync, CancellationToken.None);
    }

    /// <summary>Cancelled when the run is, or when the claim is no longer this run's.</summary>
    public CancellationToken Token => _work.Token;

    /// <summary>
    /// Records the failure and releases the claim, once (later calls get the first call's result): true when
    /// recorded, false when the claim was no longer this run's, null when the database could not be reached (the
    /// claim then lapses with its lease).
    /// </summary>
    public Task<bool?> ReleaseAsync(string why)
    {
        lock (_releaseLock) return _release ??= RecordFailureAsync(why);
    }

    private async Task<bool?> RecordFailureAsync(string why)
    {
        foreach (var delay in ReleaseRetryDelays.Prepend(TimeSpan.Zero))
        {
            await Task.Delay(delay, CancellationToken.None);
            // CancellationToken.None: a cancelled run must still say why it stopped.
            try { return await _store.FailSceneAsync(_claim, why, CancellationToken.None); }
            catch (NpgsqlException) { }
        }
        return null;
    }

    private async Task RenewUntilStoppedAsync()
    {
        // Every third of the lease, and at least every CatalogStore.MaxRenewInterval: a run with a shorter lease than
        // this one's takes the scene over once it goes unrenewed for CatalogStore.StaleAfter its own lease.
        var every = TimeSpan.FromTicks(Math.Clamp(_claim.Lease.Ticks / 3, TimeSpan.FromMilliseconds(50).Ticks, CatalogStore.MaxRenewInterval.Ticks));
        try
        {
            while (true)
            {
                await Task.Delay(every, _work.Token);
                try { await _store.HeartbeatAsync(_claim, _work.Token); }
                catch (SceneLeaseLostException) { await _work.CancelAsync(); return; }
                // Unreachable database: try again at the next tick; the work fails by itself if it lasts.
                catch (NpgsqlException) when (!_work.IsCancellationRequested) { }
            }
        }
        catch (OperationCanceledException) when (_work.IsCancellationRequested) { }
        catch (NpgsqlException) when (_work.IsCancellationRequested) { }
        if (_run.IsCancellationRequested) await ReleaseAsync(_cancelReason());
    }

    public async ValueTask DisposeAsync()
    {
        await _work.CancelAsync();
        await _renewals;
        _work.Dispose();
    }
}
