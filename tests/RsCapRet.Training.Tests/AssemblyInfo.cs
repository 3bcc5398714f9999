// Trainers seed torch's process-wide generator (weight init): two runs at once would draw from each other's
// stream, and the determinism tests compare runs bit for bit. One test at a time in this assembly.
[assembly: Xunit.CollectionBehavior(DisableTestParallelization = true)]
