// Parser threads allocate event fields and the correlator thread frees them; glibc's malloc
// spent a fifth of verify's time on that hand-off, mimalloc's per-thread free lists do not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    claimcheck::cli::main()
}
