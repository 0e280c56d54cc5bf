#include "ml_err.h"

const char *
ml_strerror(int r)
{
	switch (r) {
#define ML_ERR_CASE(name, value, text) case (value): return (text);
	ML_ERRORS(ML_ERR_CASE)
#undef ML_ERR_CASE
	}
	return "unknown error";
}

const char *
ml_errname(int r)
{
	switch (r) {
#define ML_ERR_CASE(name, value, text) case (value): return #name;
	ML_ERRORS(ML_ERR_CASE)
#undef ML_ERR_CASE
	}
	return "ML_ERR_?";
}
